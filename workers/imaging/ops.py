"""Pixel operations for renditions: orientation, mode normalisation, ICC to sRGB, flattening, encoding.

Kept apart from :mod:`workers.imaging` so that module reads as the pipeline and this one as its steps.
Every function here works on images that are already small (draft-decoded and resized where possible):
the order of operations in the pipeline is what makes it fast, these just must not add copies.
"""

from __future__ import annotations

import functools
import io
from typing import Any

from PIL import Image, ImageCms

from workers.imaging.pillowcompat import exif_without_load

#: EXIF Orientation -> the transpose that displays stored pixels upright (as ImageOps.exif_transpose).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112

MIME = {"jpeg": ("image/jpeg", "jpg"), "webp": ("image/webp", "webp"), "png": ("image/png", "png")}


def orientation(im: Image.Image, *, loaded: bool) -> int:
    """EXIF orientation (1..8) without forcing a decode.

    ``PngImageFile.getexif()`` loads the whole image when there is no eXIf chunk in ``info`` yet, so for
    a PNG that is not loaded we use :func:`~workers.imaging.pillowcompat.exif_without_load`, which reads
    only ``info``: what the header parsing put there, plus what the band decoder read after the pixels
    (eXIf, XMP or ImageMagick's raw profile in text chunks). Anything unparsable counts as 1 (as
    displayed).
    """
    getexif = functools.partial(exif_without_load, im) if im.format == "PNG" and not loaded else im.getexif
    try:
        value = getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block must not cost the whole rendition
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(im: Image.Image, value: int) -> Image.Image:
    method = _TRANSPOSE.get(value)
    return im.transpose(method) if method is not None else im


def normalise_mode(im: Image.Image) -> Image.Image:
    """Bring any decoded mode into L, RGB, RGBA or CMYK, the modes Pillow resizes well.

    CMYK stays CMYK until after the resize, so the ICC (or naive) conversion runs on the small image.
    16-bit greyscale is scaled (Pillow's own I;16 -> L conversion clips everything above 255 to white).
    """
    mode = im.mode
    if mode in ("L", "RGB", "RGBA", "CMYK") and "transparency" not in im.info:
        return im
    if mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in im.info:
        has_alpha = mode in ("PA", "LA", "La", "RGBa") or "transparency" in im.info
        if mode == "P" and not has_alpha:
            return im.convert("RGB")
        return im.convert("RGBA")
    if mode.startswith("I;16") or mode == "I":
        scale = 1 / 257 if mode.startswith("I;16") or _max_value(im) > 255 else 1.0
        return im.convert("I").point(lambda v: v * scale).convert("L")
    if mode == "F":
        factor = 255.0 if _max_value(im) <= 1.0 else 1.0
        return im.point(lambda v: v * factor).convert("L")
    if mode == "1":
        return im.convert("L")
    return im.convert("RGB")  # YCbCr, LAB, HSV, RGBX, ...


def _max_value(im: Image.Image) -> float:
    extrema = im.getextrema()
    return float(extrema[1])  # type: ignore[arg-type]  # one band (I, I;16, F): (min, max), not per-band pairs


@functools.lru_cache(maxsize=8)
def _transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    """Build (and cache: phones embed the same few profiles) a transform from an embedded ICC to sRGB."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    dst = ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(src, dst, in_mode, out_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL)


@functools.lru_cache(maxsize=32)
def _is_srgb(icc: bytes) -> bool:
    """True for profiles that describe sRGB itself, for which a transform would only cost time."""
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except Exception:
        return False
    return desc.strip().lower().startswith(("srgb", "iec 61966-2-1", "iec61966-2.1"))


def to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert to sRGB (RGB/RGBA/L) using the embedded profile; without one, assume sRGB (as browsers do).

    CMYK without a profile gets Pillow's plain conversion; Adobe-inverted CMYK JPEGs are already
    un-inverted by Pillow's JPEG reader (APP14 marker). Alpha is carried over unchanged: LittleCMS
    transforms only the colour channels. Raises ImageCms.PyCMSError/OSError on a broken profile; the
    caller decides (we fall back to ignoring the profile rather than rejecting the photo).
    """
    if icc and not (im.mode in ("RGB", "RGBA") and _is_srgb(icc)):
        try:
            out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
            if im.mode == "L":
                out_mode = "RGB"
            result = ImageCms.applyTransform(im, _transform(icc, im.mode, out_mode))
            assert result is not None
            return result
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a profile LittleCMS can't use, or one for another colour space: treat as untagged
    if im.mode == "CMYK":
        return im.convert("RGB")
    return im


def flatten(im: Image.Image) -> Image.Image:
    """Composite onto white for formats without alpha (JPEG). Straight alpha, so paste-with-mask is exact."""
    if im.mode != "RGBA":
        return im
    background = Image.new("RGB", im.size, (255, 255, 255))
    background.paste(im, (0, 0), im)
    return background


def encode(im: Image.Image, fmt: str) -> bytes:
    """Encode with no metadata at all: ``info`` is cleared so no plugin can fall back to the source's
    EXIF/GPS, XMP or ICC (PNG's writer, for one, reuses ``im.info['icc_profile']``).

    JPEG: quality 85, baseline, ``optimize`` off: a rendition is encoded once per upload, and the
    measured cost of optimized Huffman tables or progressive scans (see docs/benchmarks.md) buys
    a few % of bytes for a visible share of the per-image CPU. WebP: quality 80, method 4 (6 is ~2x slower for
    ~1-2 % smaller files).
    """
    im.info = {}
    params: dict[str, Any]
    if fmt == "jpeg":
        im = flatten(im)
        params = {"quality": 85}
    elif fmt == "webp":
        params = {"quality": 80, "method": 4}
    else:
        params = {"compress_level": 6}
    out = io.BytesIO()
    im.save(out, format=fmt.upper(), **params)
    return out.getvalue()
