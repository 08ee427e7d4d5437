"""Generate test images in memory: nothing binary is committed, every fixture says how it was made.

Shared by the imaging tests and any other test that needs a real photo-shaped file (the resize job,
the receiver's upload path). Everything returns ``bytes`` (an encoded file) unless named ``*_image``.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image

RED, GREEN, BLUE, YELLOW, GREY = (230, 20, 20), (20, 200, 40), (20, 40, 230), (240, 220, 20), (128, 128, 128)

#: EXIF orientation -> the transpose that turns an upright image into the stored pixels for that tag
#: (the inverse of what a viewer applies).
_STORE_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def corners_image(width: int = 240, height: int = 160) -> Image.Image:
    """Grey, with solid RED/GREEN/BLUE/YELLOW quarter-size blocks in the TL/TR/BL/BR corners."""
    im = Image.new("RGB", (width, height), GREY)
    bw, bh = width // 4, height // 4
    for colour, (x, y) in zip(
        (RED, GREEN, BLUE, YELLOW), ((0, 0), (width - bw, 0), (0, height - bh), (width - bw, height - bh)), strict=True
    ):
        im.paste(colour, (x, y, x + bw, y + bh))
    return im


def photo_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Photo-like content from Pillow alone: gradients, a disc, and noise (so JPEG sizes are realistic)."""
    r = Image.linear_gradient("L").resize((width, height))
    g = Image.radial_gradient("L").resize((width, height))
    b = Image.effect_noise((width, height), 48 + seed).point(lambda v: v * 0.5 + 64)
    return Image.merge("RGB", (r, g, b))


def exif_block(orientation: int | None = None, *, gps: bool = False) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "OffloadTestCam"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N"  # GPSLatitudeRef
        gps_ifd[2] = (48.0, 51.0, 29.0)  # GPSLatitude: Paris
        gps_ifd[3] = "E"
        gps_ifd[4] = (2.0, 17.0, 40.0)
    return exif


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def oriented_jpeg(orientation: int, width: int = 240, height: int = 160, **params: object) -> bytes:
    """A JPEG whose *displayed* image is ``corners_image(width, height)``, stored as a camera would."""
    upright = corners_image(width, height)
    stored = upright.transpose(_STORE_AS[orientation]) if orientation in _STORE_AS else upright
    return encode(stored, "JPEG", quality=95, exif=exif_block(orientation), **params)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


@functools.cache
def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real, valid 1-bit PNG of ``width x height`` black pixels: a few hundred KB claiming ~900 MP."""
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = bytearray()
    block = row * 1000
    for _ in range(height // 1000):
        idat += comp.compress(block)
    idat += comp.compress(row * (height % 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", bytes(idat)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def heic(im: Image.Image, **params: object) -> bytes:
    import pillow_heif

    heif = pillow_heif.from_pillow(im)
    buf = io.BytesIO()
    heif.save(buf, quality=90, **params)
    return buf.getvalue()


def animated_gif(colours: tuple[tuple[int, int, int], ...] = (RED, BLUE), size: tuple[int, int] = (64, 48)) -> bytes:
    frames = [Image.new("RGB", size, c) for c in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>\n'
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
TEXT = b"Quarterly numbers, see attached.\n"


# ---------------------------------------------------------------- ICC profiles, built by hand
# Pillow's ImageCms can only create sRGB/LAB/XYZ profiles, and we ship no binary fixtures, so these
# write minimal ICC v2 profiles: a matrix/TRC RGB display profile and a CMYK->Lab lut16 printer profile.

_D50 = (0.9642, 1.0, 0.8249)
_D65 = (0.95047, 1.0, 1.08883)
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0\0\0" + b"\0" * 67


def _profile(cls: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    table = struct.pack(">I", len(tags))
    offset = 128 + 4 + 12 * len(tags)
    body = b""
    for sig, data in tags.items():
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = 128 + len(table) + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + cls
        + space
        + pcs
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in _D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + table + body


def _mat_mul(a, b):  # 3x3 @ 3x3 or 3x3 @ 3
    if isinstance(b[0], tuple | list):
        return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3))
    return tuple(sum(a[i][k] * b[k] for k in range(3)) for i in range(3))


def _inv(m):
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return (
        ((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
        ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
        ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det),
    )


def rgb_to_xyz_matrix(primaries, white=_D65):
    """Linear RGB -> XYZ for the given chromaticities (the textbook construction)."""
    cols = [(x / y, 1.0, (1 - x - y) / y) for x, y in primaries]
    m = tuple(tuple(cols[j][i] for j in range(3)) for i in range(3))
    s = _mat_mul(_inv(m), white)
    return tuple(tuple(m[i][j] * s[j] for j in range(3)) for i in range(3))


def _bradford_d65_to_d50():
    src, dst = _mat_mul(_BRADFORD, _D65), _mat_mul(_BRADFORD, _D50)
    scale = ((dst[0] / src[0], 0, 0), (0, dst[1] / src[1], 0), (0, 0, dst[2] / src[2]))
    return _mat_mul(_inv(_BRADFORD), _mat_mul(scale, _BRADFORD))


def rgb_icc_profile(primaries=P3_PRIMARIES, gamma: float = 2.2, description: str = "Display P3 gamma 2.2 (test)"):
    """A matrix/TRC RGB profile (D65 white, colorants Bradford-adapted to D50 as ICC requires)."""
    m = _mat_mul(_bradford_d65_to_d50(), rgb_to_xyz_matrix(primaries))
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    tags = {
        b"desc": _desc_tag(description),
        b"wtpt": _xyz_tag(_D50),
        b"rXYZ": _xyz_tag(tuple(m[i][0] for i in range(3))),
        b"gXYZ": _xyz_tag(tuple(m[i][1] for i in range(3))),
        b"bXYZ": _xyz_tag(tuple(m[i][2] for i in range(3))),
        b"rTRC": curve,
        b"gTRC": curve,
        b"bTRC": curve,
        b"cprt": b"text\0\0\0\0public domain\0",
    }
    return _profile(b"mntr", b"RGB ", b"XYZ ", tags)


def srgb_to_lab_d50(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    lin = [((c / 255 + 0.055) / 1.055) ** 2.4 if c / 255 > 0.04045 else c / 255 / 12.92 for c in rgb]
    xyz = _mat_mul(_bradford_d65_to_d50(), _mat_mul(rgb_to_xyz_matrix(SRGB_PRIMARIES), lin))

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(v / w) for v, w in zip(xyz, _D50, strict=True))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


#: sRGB of 100 % process inks on white paper (roughly ISO coated): what the CMYK test profile prints.
INKS = {"C": (0, 174, 239), "M": (236, 0, 140), "Y": (255, 241, 0), "K": (35, 31, 32)}


def cmyk_icc_profile(description: str = "Test CMYK process inks (lut16)") -> bytes:
    """A CMYK output profile whose A2B0 is a 2-point-per-channel lut16 into Lab.

    Each corner of the CMYK cube is the product of the INKS' sRGB transmittances, so 100 % cyan is
    (0, 174, 239), not the (0, 255, 255) that a profile-less conversion gives.
    """
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = [255.0, 255.0, 255.0]
                    for on, ink in zip((c, m, y, k), "CMYK", strict=True):
                        if on:
                            rgb = [v * t / 255 for v, t in zip(rgb, INKS[ink], strict=True)]
                    lab_l, lab_a, lab_b = srgb_to_lab_d50(tuple(rgb))  # type: ignore[arg-type]
                    enc = (lab_l / 100 * 0xFF00, (lab_a + 128) * 256, (lab_b + 128) * 256)
                    clut += struct.pack(">3H", *(max(0, min(0xFFFF, round(v))) for v in enc))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">2H", 0, 0xFFFF)
    a2b0 = b"mft2\0\0\0\0" + bytes((4, 3, 2, 0)) + identity + struct.pack(">HH", 2, 2) + ramp * 4 + clut + ramp * 3
    tags = {b"desc": _desc_tag(description), b"wtpt": _xyz_tag(_D50), b"A2B0": a2b0, b"cprt": b"text\0\0\0\0pd\0"}
    return _profile(b"prtr", b"CMYK", b"Lab ", tags)


def cmyk_image(blocks: dict[str, tuple[int, int, int, int]], block: int = 64) -> Image.Image:
    """CMYK image with one solid block per entry, left to right, in insertion order."""
    im = Image.new("CMYK", (block * len(blocks), block), (0, 0, 0, 0))
    for i, value in enumerate(blocks.values()):
        im.paste(value, (i * block, 0, (i + 1) * block, block))
    return im
