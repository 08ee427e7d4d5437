"""workers.imaging.png / imaging_resize: banded PNG decode and banded resizes match Pillow's one-pass result.

The PNGs are written by a small encoder here, so every filter type (None, Sub, Up, Average, Paeth) and
odd chunking (many IDATs, empty IDATs, metadata after the pixels) is exercised on purpose, not left to
what Pillow's encoder happens to choose. Small images and small bands keep this fast: the band size is
a tuning constant, so tests shrink it to get many bands, a short last band and partial reduce blocks.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageChops

import tests.support.imagegen as gen
from services.errors import ImageRejected
from workers.imaging import Variant, render_variants
from workers.imaging import png as imaging_png
from workers.imaging import resize as imaging_resize
from workers.imaging.ops import normalise_mode
from workers.imaging.png import iter_bands, png_layout, resize_png
from workers.imaging.resize import StreamingResizer, banded_resize, residual_kernel

LANCZOS = Image.Resampling.LANCZOS
BICUBIC = Image.Resampling.BICUBIC
HAMMING = Image.Resampling.HAMMING
_COLOUR_TYPE = {"L": 0, "RGB": 2, "P": 3, "LA": 4, "RGBA": 6}


# ---------------------------------------------------------------- a PNG writer with chosen filters
def _chunk(cid: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + cid + data + struct.pack(">I", zlib.crc32(cid + data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filter(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
        out[i] = (x - predictor) & 0xFF
    return bytes(out)


def write_png(
    im: Image.Image,
    *,
    filters: tuple[int, ...] = (0, 1, 2, 3, 4),
    idat_size: int = 97,
    trns: bytes | None = None,
    exif_after_pixels: bytes | None = None,
    trailing: tuple[tuple[bytes, bytes], ...] = (),
    drop_tail: int = 0,
) -> bytes:
    """An 8-bit PNG of ``im`` (L, LA, RGB, RGBA or P), row y filtered with ``filters[y % len(filters)]``,
    the zlib stream split into IDATs of ``idat_size`` bytes with an empty IDAT in between."""
    mode = im.mode
    bpp = {"L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    stride = im.width * bpp
    raw = im.tobytes("raw", mode)
    prior = bytes(stride)
    filtered = bytearray()
    for y in range(im.height):
        row = raw[y * stride : (y + 1) * stride]
        kind = filters[y % len(filters)]
        filtered += bytes([kind]) + _filter(kind, row, prior, bpp)
        prior = row
    stream = zlib.compress(bytes(filtered), 6)
    if drop_tail:
        stream = stream[:-drop_tail]
    ihdr = struct.pack(">IIBBBBB", im.width, im.height, 8, _COLOUR_TYPE[mode], 0, 0, 0)
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr)]
    if mode == "P":
        palette = im.getpalette() or []
        parts.append(_chunk(b"PLTE", bytes(palette[: 3 * 256])))
    if trns is not None:
        parts.append(_chunk(b"tRNS", trns))
    for i in range(0, len(stream), idat_size):
        parts.append(_chunk(b"IDAT", stream[i : i + idat_size]))
        if i == 0:
            parts.append(_chunk(b"IDAT", b""))
    if exif_after_pixels is not None:
        parts.append(_chunk(b"eXIf", exif_after_pixels))
    parts.extend(_chunk(cid, data) for cid, data in trailing)
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _photo(mode: str, width: int, height: int) -> Image.Image:
    base = gen.photo_image(width, height, seed=3)
    if mode == "P":
        return base.quantize(200)
    if mode in ("RGBA", "LA"):
        alpha = Image.linear_gradient("L").resize((width, height)).rotate(30)
        base.putalpha(alpha)
        return base if mode == "RGBA" else base.convert("LA")
    return base.convert(mode)


def _expected(data: bytes, size: tuple[int, int], gap: float, resample: Image.Resampling = LANCZOS) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return normalise_mode(im).resize(size, resample, reducing_gap=gap)


def _banded(
    data: bytes, size: tuple[int, int], gap: float, resample: Image.Resampling | None = LANCZOS
) -> Image.Image | None:
    fp = io.BytesIO(data)
    im = Image.open(fp)
    return resize_png(im, fp, size, gap, resample)


def _max_diff(a: Image.Image, b: Image.Image) -> int:
    assert (a.mode, a.size) == (b.mode, b.size)
    extrema = ImageChops.difference(a, b).getextrema()
    return max(hi for _, hi in extrema) if isinstance(extrema[0], tuple) else extrema[1]  # type: ignore[return-value]


def _h_then_v(im: Image.Image, size: tuple[int, int], resample: Image.Resampling, box=None) -> Image.Image:
    """Pillow's two resize passes, explicitly horizontal first (Pillow 13 picks the order from the sizes)."""
    x0, y0, x1, y1 = box or (0, 0, im.width, im.height)
    rows = im.resize((size[0], im.height), resample, box=(x0, 0, x1, im.height))
    return rows.resize(size, resample, box=(0, y0, size[0], y1))


@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few rows, so a 100-row test image is many bands with a short last one."""
    monkeypatch.setattr(imaging_png, "_BAND_BYTES", 700)


# ---------------------------------------------------------------- decode exactness
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (4, 3, 2, 1, 0, 2, 4)])
def test_bands_reassemble_to_pillows_full_decode(mode, filters):
    im = _photo(mode, 53, 41)
    data = write_png(im, filters=filters)
    reference = Image.open(io.BytesIO(data))
    reference.load()
    assert reference.tobytes() == im.tobytes()  # the test encoder itself is right
    fp = io.BytesIO(data)
    layout = png_layout(fp)
    assert layout is not None
    rows = []
    for band, first in iter_bands(fp, layout, band_rows=4):
        assert band.mode == reference.mode
        rows.append(band.crop((0, first, band.width, band.height)).tobytes())
    assert b"".join(rows) == reference.tobytes()
    assert len(rows) == 11  # 41 rows in bands of 4: the last band is short


@pytest.mark.parametrize(
    ("mode", "trns"),
    [("L", None), ("L", b"\x00\x80"), ("LA", None), ("RGB", None), ("RGB", b"\x00\x10\x00\x20\x00\x30"),
     ("RGBA", None), ("P", None), ("P", bytes(range(0, 250, 5)))],
)  # fmt: skip
@pytest.mark.parametrize(("size", "gap"), [((40, 30), 1.25), ((23, 17), 1.25), ((61, 46), 1.25), ((30, 22), 2.0)])
@pytest.mark.parametrize("resample", [LANCZOS, BICUBIC])
def test_resize_png_matches_pillow_resize_of_the_full_image(small_bands, mode, trns, size, gap, resample):
    data = write_png(_photo(mode, 97, 73), trns=trns)
    banded = _banded(data, size, gap, resample)
    assert banded is not None
    expected = _expected(data, size, gap, resample)
    assert banded.mode == expected.mode
    # Equal but for float rounding of the per-batch resize box (see workers/imaging/resize.py).
    assert _max_diff(banded, expected) <= 1


def test_resize_png_of_a_pillow_written_photo(small_bands):
    data = gen.encode(gen.photo_image(301, 203), "PNG", optimize=True)
    assert _max_diff(_banded(data, (160, 108), 1.25), _expected(data, (160, 108), 1.25)) <= 1


def test_resize_png_picks_the_residual_kernel_like_the_full_decode_path(small_bands):
    data = write_png(_photo("RGB", 97, 73))
    large_step = imaging_resize.LARGE_STEP_KERNEL
    # 97 -> 40 is 2.4x: no box reduce at gap 1.25, a 2.4x residual step (see residual_kernel).
    assert residual_kernel(97 / 40) == large_step != LANCZOS
    assert _max_diff(_banded(data, (40, 30), 1.25, None), _expected(data, (40, 30), 1.25, large_step)) <= 1
    # 97 -> 30 at gap 1.25 is a 2x box reduce, then a 1.6x residual step: the large-step kernel as well.
    assert _max_diff(_banded(data, (30, 23), 1.25, None), _expected(data, (30, 23), 1.25, large_step)) <= 1
    # 97 -> 78 is a 1.24x step: LANCZOS.
    assert _max_diff(_banded(data, (78, 59), 1.25, None), _expected(data, (78, 59), 1.25, LANCZOS)) <= 1


# ---------------------------------------------------------------- what falls back to a full decode
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(gen.encode(Image.new("I;16", (40, 30), 1000), "PNG"), id="16-bit"),
        pytest.param(gen.encode(Image.new("1", (40, 30), 1), "PNG"), id="1-bit"),
        pytest.param(gen.encode(Image.new("P", (40, 30), 1), "PNG", bits=4), id="4-bit palette"),
        pytest.param(
            gen.encode(
                Image.new("RGB", (40, 30), gen.RED),
                "PNG",
                save_all=True,
                append_images=[Image.new("RGB", (40, 30), gen.BLUE)],
            ),
            id="APNG",
        ),  # fmt: skip
    ],
)
def test_unusual_pngs_are_left_to_the_full_decode(data):
    assert _banded(data, (20, 15), 1.25) is None
    _, [r] = render_variants(data, (Variant("v", 20, "png"),))
    assert (r.width, r.height) == (20, 15)


def test_interlaced_png_is_left_to_the_full_decode():
    data = bytearray(write_png(_photo("RGB", 40, 30)))
    data[28] = 1  # IHDR interlace method: Adam7
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    assert png_layout(io.BytesIO(bytes(data))) is None


# ---------------------------------------------------------------- through render_variants
def test_render_variants_reads_exif_orientation_after_the_pixels(small_bands):
    stored = gen.corners_image(240, 160)
    exif = gen.exif_block(6).tobytes()
    data = write_png(stored, exif_after_pixels=exif)
    assert "exif" not in Image.open(io.BytesIO(data)).info  # only a full load would find it
    info, [r] = render_variants(data, (Variant("v", 120, "png"),))
    assert info.orientation == 6
    assert (r.width, r.height) == (80, 120)  # displayed upright
    im = Image.open(io.BytesIO(r.data)).convert("RGB")
    # ROTATE_270 moves the stored top-left (red) corner to the top-right.
    assert max(abs(a - b) for a, b in zip(im.getpixel((74, 5)), gen.RED, strict=True)) <= 14


def test_render_variants_reads_xmp_orientation_after_the_pixels(small_bands):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><tiff:Orientation>8</tiff:Orientation></x:xmpmeta>'
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp
    data = write_png(gen.corners_image(240, 160), trailing=((b"tEXt", b"Comment\x00hello"), (b"iTXt", itxt)))
    info, [r] = render_variants(data, (Variant("v", 120, "png"),))
    assert info.orientation == 8
    assert (r.width, r.height) == (80, 120)
    full = Image.open(io.BytesIO(data))
    full.load()
    assert full.getexif().get(0x0112) == 8  # what a full decode finds too


def test_render_variants_band_path_equals_full_decode_path(small_bands):
    data = write_png(_photo("RGBA", 160, 120))
    variants = (Variant("a", 100, "png"), Variant("b", 40, "png"))
    _, banded = render_variants(data, variants)
    _, full = render_variants(gen.encode(Image.open(io.BytesIO(data)), "PNG"), variants)  # same pixels, via Pillow
    for x, y in zip(banded, full, strict=True):
        assert _max_diff(Image.open(io.BytesIO(x.data)), Image.open(io.BytesIO(y.data))) <= 1


@pytest.mark.parametrize("drop_tail", [12, 40, 400])
def test_truncated_png_rejected_on_the_band_path(small_bands, drop_tail):
    data = write_png(_photo("RGB", 97, 73), drop_tail=drop_tail)
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        render_variants(data, (Variant("v", 40, "png"),))


def test_png_cut_inside_an_idat_rejected(small_bands):
    data = write_png(_photo("RGB", 97, 73), idat_size=1 << 20)
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        render_variants(data[: len(data) // 2], (Variant("v", 40, "png"),))


def test_corrupt_png_data_rejected_on_the_band_path(small_bands):
    data = bytearray(write_png(_photo("RGB", 97, 73), idat_size=1 << 20))
    data[300:340] = b"\x07" * 40
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        render_variants(bytes(data), (Variant("v", 40, "png"),))


def test_bad_filter_type_rejected(small_bands):
    im = _photo("L", 60, 40)
    raw = b"".join(b"\x07" + im.tobytes()[y * 60 : (y + 1) * 60] for y in range(40))  # filter 7 does not exist
    ihdr = struct.pack(">IIBBBBB", 60, 40, 8, 0, 0, 0, 0)
    data = b"".join(
        (b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr), _chunk(b"IDAT", zlib.compress(raw)), _chunk(b"IEND", b""))
    )
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        render_variants(data, (Variant("v", 20, "png"),))


def test_extra_data_after_the_last_row_is_ignored_as_pillow_does(small_bands):
    im = _photo("RGB", 64, 48)
    raw = b"".join(b"\x00" + im.tobytes()[y * 192 : (y + 1) * 192] for y in range(48)) + b"\x00" * 5000
    ihdr = struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0)
    data = b"".join(
        (b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr), _chunk(b"IDAT", zlib.compress(raw)), _chunk(b"IEND", b""))
    )
    assert _max_diff(_banded(data, (32, 24), 1.25), _expected(data, (32, 24), 1.25)) <= 1


# ---------------------------------------------------------------- the banded resizers on their own
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBa", "CMYK"])
@pytest.mark.parametrize(("src", "size"), [((300, 700), (160, 373)), ((1000, 613), (800, 490)), ((90, 900), (31, 310))])
@pytest.mark.parametrize("resample", [LANCZOS, BICUBIC, HAMMING])
def test_banded_resize_matches_resize(mode, src, size, resample):
    im = gen.photo_image(*src).convert("RGBA" if mode == "RGBa" else mode)
    if mode == "RGBa":
        im = im.convert("RGBa")
    # Pillow runs each band vertical-first: the intermediate rounds differently from one call's.
    assert _max_diff(banded_resize(im, size, resample=resample), im.resize(size, resample)) <= 2


@pytest.mark.parametrize(
    ("src", "size"), [((1601, 1601), (1600, 1600)), ((2000, 1500), (1600, 1200)), ((900, 700), (512, 398))]
)
def test_streaming_resizer_is_horizontal_first_even_where_clipping_shows_the_order(src, size):
    # Noise makes LANCZOS overshoot on every pixel, so the intermediate's clipping (which depends on the
    # pass order) shows at full strength: vertical-first would be ~40 levels off here.
    im = Image.effect_noise(src, 90).convert("L")
    resizer = StreamingResizer("L", im.size, size, (0, 0, *im.size))
    for y in range(0, im.height, 37):
        resizer.add(im.crop((0, y, im.width, min(y + 37, im.height))))
    assert _max_diff(resizer.result(), _h_then_v(im, size, LANCZOS)) <= 1


@pytest.mark.parametrize("seed", range(4))
def test_streaming_resizer_matches_resize_whatever_the_band_heights(seed):
    rng = random.Random(seed)
    im = gen.photo_image(211, 517, seed=seed)
    size = (rng.randint(40, 200), rng.randint(60, 500))
    box = (0.0, 0.0, 211.0, 517.0) if seed % 2 else (0.0, 0.0, 210.5, 516.5)
    resample = (LANCZOS, BICUBIC, HAMMING, LANCZOS)[seed]
    resizer = StreamingResizer("RGB", im.size, size, box, resample, batch=rng.choice([1, 7, 64]))
    y = 0
    while y < im.height:
        h = min(rng.randint(1, 40), im.height - y)
        resizer.add(im.crop((0, y, im.width, y + h)))
        y += h
    assert _max_diff(resizer.result(), _h_then_v(im, size, resample, box)) <= 1


def test_streaming_resizer_refuses_missing_rows():
    resizer = StreamingResizer("RGB", (50, 50), (20, 20), (0, 0, 50, 50))
    resizer.add(Image.new("RGB", (50, 30)))
    with pytest.raises(OSError, match="truncated"):
        resizer.result()


@pytest.mark.parametrize("size", [0, 1, 65534, 65535, 65536, 200_001])
def test_stored_zlib_round_trips(size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert zlib.decompress(imaging_png._stored_zlib(b"\x00ab", data)) == b"\x00ab" + data
    assert zlib.decompress(imaging_png._stored_zlib(data)) == data
