"""Web renditions of uploaded photos: safe decode, correct orientation and colour, fast resize.

Pure imaging: Pillow (and pillow-heif for HEIC), no Redis, Salesforce or Flask. The job that downloads
a ContentVersion calls :func:`render_variants` and uploads what it returns.

Why it is shaped like this (numbers in docs/benchmarks.md, section "Images"):

* **Safety first.** The byte size is checked before Pillow sees the file, the format is allowlisted
  (``Image.open(fp, formats=...)``: EPS/PDF/SVG parsers never run), and ``width * height`` from the
  header is capped before any decode, and so is a JPEG's number of scans (each costs libjpeg a pass
  over the image: :data:`~workers.imaging.decode.DEFAULT_MAX_JPEG_SCANS`). Every Pillow failure becomes
  ``ImageRejected``.
* **Decode less.** JPEGs are decoded by libjpeg at the smallest DCT scale (1/8, 1/4, 1/2: Pillow's ``draft``) that is
  still at least as large as the largest rendition (:func:`~workers.imaging.decode.draft_jpeg`); a 24 MP
  photo is decoded as 3.4 MP. The resize then reads exactly the source's box in that decode.
* **Never hold a big image twice.** Plain 8-bit PNGs are decoded in bands straight into the resize
  (:mod:`workers.imaging.png`): the full-size bitmap never exists. The first resize runs in bands of
  output rows (:mod:`workers.imaging.resize`), so Pillow's full-height intermediate never exists either.
* **Touch big images once.** The largest rendition is resized straight from the decoded image in its
  stored orientation; orientation, colour conversion (ICC -> sRGB) and alpha flattening run on that
  result, and each smaller rendition is resized from the previous one. The step left after the DCT
  scaling or box reduce is BICUBIC from 1.5x up, LANCZOS below (``residual_kernel``).
* **Strip everything.** Renditions carry no EXIF (GPS!), XMP or ICC: pixels are sRGB, upright.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from services.errors import ConfigError
from services.variants import DEFAULT_VARIANTS_SPEC, Variant, parse_variants
from workers.imaging.decode import (
    DEFAULT_MAX_JPEG_SCANS,
    draft_jpeg,
    guarded,
    open_image,
    pillow_errors,
    read_source,
)
from workers.imaging.ops import (
    MIME,
    SWAPS_AXES,
    apply_orientation,
    encode,
    normalise_mode,
    orientation,
    to_srgb,
)
from workers.imaging.png import resize_png
from workers.imaging.resize import banded_resize, residual_kernel

__all__ = [
    "DEFAULT_VARIANTS_SPEC",
    "Rendition",
    "SourceInfo",
    "Variant",
    "parse_variants",
    "probe",
    "render_variants",
]

log = logging.getLogger("workers.imaging")

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 100 * 1024 * 1024

#: ``reducing_gap`` for the first (largest) resize. Pillow first shrinks by an integer factor with a box
#: filter (``Image.reduce``) as long as ``reducing_gap`` times the target remains, then does LANCZOS.
#: 1.25 lets a 4000 px PNG go 4000 -> 2000 (box) -> 1600 (LANCZOS), a 1.25x LANCZOS step like the one
#: after a 1/2 DCT-scaled JPEG decode; SSIM vs. a full LANCZOS stays >= 0.99 (bench/images.py).
FIRST_REDUCING_GAP = 1.25
#: Chained steps (1600 -> 800 -> 200). A step of at most 2x is a plain box average (``Image.reduce``,
#: gap 1.0): 3.5x cheaper than LANCZOS on a 1600 px image at a pixel SSIM vs. LANCZOS-from-full of 0.993.
#: Larger steps keep LANCZOS after an integer reduce with gap 2.0 (what ``Image.thumbnail`` uses): a 4x
#: box average alone drops thumbnails below SSIM 0.99 (bench/images.py).
CHAIN_REDUCING_GAP = 2.0
SMALL_STEP_REDUCING_GAP = 1.0

@dataclass(frozen=True)
class SourceInfo:
    """What the uploaded file is. ``width``/``height`` are as stored, before EXIF orientation."""

    format: str
    width: int
    height: int
    orientation: int
    sha256: str
    byte_size: int


@dataclass(frozen=True)
class Rendition:
    """An encoded rendition; ``extension`` has no dot ("jpg", "webp", "png")."""

    variant: Variant
    data: bytes
    width: int
    height: int
    mime_type: str
    extension: str


def _fit(width: int, height: int, long_edge: int) -> tuple[int, int]:
    """Target size with the long side at ``long_edge``, never larger than the source (no upscaling).

    Symmetric in (width, height), so it gives the same numbers in stored or displayed orientation.
    """
    longest = max(width, height)
    if longest <= long_edge:
        return width, height
    scale = long_edge / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _source_info(im: Image.Image, size: tuple[int, int], orient: int, sha256: str, nbytes: int) -> SourceInfo:
    fmt = "JPEG" if im.format == "MPO" else (im.format or "UNKNOWN")
    info = SourceInfo(fmt, size[0], size[1], orient, sha256, nbytes)
    log.info(
        "image source format=%s width=%d height=%d orientation=%d byte_size=%d sha256=%s",
        info.format, info.width, info.height, info.orientation, info.byte_size, info.sha256,
    )  # fmt: skip
    return info


def probe(source: bytes | str | os.PathLike[str] | BinaryIO, *, max_pixels: int, max_bytes: int,
          max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS) -> SourceInfo:
    """Identify and bound-check a source from its header only (no pixel decode); raise ImageRejected."""
    fp, nbytes, sha256, own = read_source(source, max_bytes)
    try:
        im = open_image(fp, max_pixels, max_jpeg_scans)
        with im:
            orient = orientation(im, loaded=False)
            return _source_info(im, im.size, orient, sha256, nbytes)
    finally:
        if own:
            fp.close()


def render_variants(
    source: bytes | str | os.PathLike[str] | BinaryIO,
    variants: Sequence[Variant],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS,
) -> tuple[SourceInfo, list[Rendition]]:
    """Decode ``source`` once and return its renditions, in the order of ``variants``.

    Raises ImageRejected (a PermanentJobError) for anything that is not an acceptable image; an
    unreadable *path* (missing file, permissions) raises OSError as usual, since that is not the
    image's fault.
    """
    if not variants:
        raise ConfigError("OFFLOAD_IMAGE_VARIANTS is empty: at least one rendition is needed.")
    fp, nbytes, sha256, own = read_source(source, max_bytes)
    try:
        im = open_image(fp, max_pixels, max_jpeg_scans)
        with im:
            return _render(im, fp, variants, max_pixels, sha256, nbytes)
    finally:
        if own:
            fp.close()


def _render(
    im: Image.Image, fp: BinaryIO, variants: Sequence[Variant], max_pixels: int, sha256: str, nbytes: int
) -> tuple[SourceInfo, list[Rendition]]:
    width, height = im.size
    order = sorted(range(len(variants)), key=lambda i: -variants[i].long_edge)
    first = _fit(width, height, variants[order[0]].long_edge)
    current, loaded = _decode_first(im, fp, first, max_pixels)
    # After the decode, since a PNG's eXIf may follow its pixels (the band decoder reads those chunks
    # too, but leaves ``im`` unloaded: then ``getexif()`` must not be allowed to trigger a full load).
    orient = orientation(im, loaded=loaded)
    info = _source_info(im, (width, height), orient, sha256, nbytes)
    icc = im.info.get("icc_profile")
    if current is not im:  # free the decoded source before encoding: it is most of the peak RSS
        im.close()

    with pillow_errors(max_pixels, "resized"):
        current = apply_orientation(to_srgb(current, icc), orient)
        results: dict[int, Rendition] = {}
        for i in order:
            variant = variants[i]
            size = _fit(width, height, variant.long_edge)
            if orient in SWAPS_AXES:
                size = (size[1], size[0])
            step = max(current.width / size[0], current.height / size[1])
            current = _resize(current, size, SMALL_STEP_REDUCING_GAP if step <= 2.0 else CHAIN_REDUCING_GAP)
            mime, ext = MIME[variant.format]
            data = encode(current, variant.format)
            results[i] = Rendition(variant, data, current.width, current.height, mime, ext)
            log.debug(
                "image rendition name=%s width=%d height=%d bytes=%d",
                variant.name, current.width, current.height, len(data),
            )  # fmt: skip
    return info, [results[i] for i in range(len(variants))]


def _decode_first(im: Image.Image, fp: BinaryIO, first: tuple[int, int], max_pixels: int) -> tuple[Image.Image, bool]:
    """Decode ``im`` and resize it to the largest rendition's size, in stored orientation.

    Large images never exist at full size here: plain PNGs are decoded in bands straight into the
    resize (:mod:`workers.imaging.png`), JPEGs at a reduced DCT scale, and the resize is done in bands of
    output rows (:func:`~workers.imaging.resize.banded_resize`), so Pillow's full-height intermediate
    never exists either. Returns the image (``im`` itself when no resize is needed) and whether ``im``
    was loaded (if not, ``im.getexif()`` would decode it all: see :func:`orientation`).
    """
    if im.format == "PNG" and first != im.size:
        with pillow_errors(max_pixels, "decoded"):
            banded = resize_png(im, fp, first, FIRST_REDUCING_GAP)
        if banded is not None:
            return banded, False
    box = None
    if im.format in ("JPEG", "MPO") and first != im.size:
        box = draft_jpeg(im, fp, first)
    guarded(max_pixels, "decoded", im.load)
    with pillow_errors(max_pixels, "resized"):
        work = normalise_mode(im)
        if work.size == first:
            return work, True
        if box is None:
            box = (0.0, 0.0, float(work.width), float(work.height))
        fx = int((box[2] - box[0]) / first[0] / FIRST_REDUCING_GAP) or 1
        fy = int((box[3] - box[1]) / first[1] / FIRST_REDUCING_GAP) or 1
        kernel = residual_kernel(max((box[2] - box[0]) / fx / first[0], (box[3] - box[1]) / fy / first[1]))
        if fx > 1 or fy > 1 or work.mode in ("RGBA", "LA", "P", "1"):
            current = work.resize(first, kernel, box=box, reducing_gap=FIRST_REDUCING_GAP)
        else:
            current = banded_resize(work, first, box=box, resample=kernel)
        if work is not im:
            work.close()
        return current, True


def _resize(im: Image.Image, size: tuple[int, int], reducing_gap: float) -> Image.Image:
    if im.size == size:
        return im
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=reducing_gap)
