"""Safe opening of untrusted uploads: size cap, format allowlist, pixel cap, clear rejections.

Everything here runs *before* any pixel is decoded. A Salesforce user can upload anything, so every
failure mode of Pillow (unknown format, decompression bomb, truncated or corrupt data, plugin bugs)
is turned into :class:`~services.errors.ImageRejected` with a message a Salesforce admin can act on.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, TypeVar

from PIL import GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

from services.errors import ImageRejected
from services.imagetypes import IMAGE_FILE_TYPES

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO

#: Pillow format ids we are willing to parse. Everything else (EPS runs Ghostscript, PDF, SVG, PSD, ICO,
#: ...) is refused by Pillow itself because ``Image.open(..., formats=...)`` never tries other plugins.
#: The multi-picture JPEGs many cameras write come back from the JPEG opener with format "MPO".
ALLOWED_FORMATS: tuple[str, ...] = tuple(IMAGE_FILE_TYPES)
#: Imported by name so that every allowed format is registered and Image.open never needs ``Image.init()``
#: (which would import all ~45 plugins into every worker).
_PLUGINS = (GifImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin)
FRIENDLY_FORMATS = "JPEG, PNG, WebP, GIF, TIFF and HEIC"

_CHUNK = 1 << 20
_heif_lock = threading.Lock()
_heif_registered = False

T = TypeVar("T")
Box = tuple[float, float, float, float]


def register_heif() -> None:
    """Register pillow-heif's opener once, on first use (importing it costs ~20 ms and libheif memory)."""
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            from pillow_heif import register_heif_opener

            # No thumbnails/depth/aux images: we only ever read the primary image.
            register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _heif_registered = True


#: The ``ftyp`` major brands pillow-heif's Pillow opener accepts, mirrored from its ``_is_supported_heif``
#: (pillow_heif/as_plugin.py, pillow-heif 1.8.1) so that sniffing a file never imports pillow-heif. AVIF
#: (``avif``/``avis``) is not among them: pillow-heif's ``is_supported`` knows it, but its opener does not,
#: so an AVIF upload is refused whether or not the opener is registered (see :func:`describe_unknown`).
HEIF_BRANDS = frozenset((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"))
#: What ``Image.open`` may try on a file that is not HEIF. HEIF must be left out, not just left last: for a
#: format id that is not registered, ``Image.open`` calls ``Image.init()`` (PIL/Image.py ``_open_core``),
#: which imports every plugin; an unidentifiable upload would reach it.
NON_HEIF_FORMATS: tuple[str, ...] = tuple(f for f in ALLOWED_FORMATS if f != "HEIF")


def is_heif(head: bytes) -> bool:
    """Whether a file's first 12 bytes are an ISO-BMFF ``ftyp`` box with a HEIF major brand.

    The same test pillow-heif's opener applies, so a file that fails it would be refused by pillow-heif
    anyway: registering the opener (and loading libheif) only for files that pass it changes no outcome.
    """
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def formats_for(head: bytes) -> tuple[str, ...]:
    """The formats ``Image.open`` may try for a file starting with ``head``; registers HEIF when needed."""
    if is_heif(head):
        register_heif()
        return ALLOWED_FORMATS
    return NON_HEIF_FORMATS


def _mp(pixels: int) -> str:
    """Megapixels as an admin reads them: '900 MP', '0.3 MP'."""
    mp = pixels / 1_000_000
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.1f} MP"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def too_many_pixels(width: int, height: int, max_pixels: int) -> ImageRejected:
    return ImageRejected(
        f"The file is a {width}x{height} image ({_mp(width * height)}), above the {_mp(max_pixels)} limit "
        "(OFFLOAD_MAX_PIXELS)."
    )


def read_source(source: Source, max_bytes: int) -> tuple[BinaryIO, int, str, bool]:
    """Return ``(fp, byte_size, sha256, we_own_fp)`` after enforcing ``max_bytes``.

    The size is checked before Pillow sees a single byte. Paths and seekable streams are hashed in
    chunks and rewound rather than copied into memory, because for a 50 MP photo the copy would be a
    visible share of the worker's peak RSS.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source) if not isinstance(source, bytes) else source
        _check_bytes(len(data), max_bytes)
        return io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest(), True
    if isinstance(source, str | os.PathLike):
        size = os.stat(source).st_size
        _check_bytes(size, max_bytes)
        fp: BinaryIO = open(source, "rb")  # closed by the caller (we_own_fp)
        try:
            digest, size = _hash_stream(fp, max_bytes)
            fp.seek(0)
        except BaseException:
            fp.close()
            raise
        return fp, size, digest, True
    if source.seekable() and source.tell() == 0:
        digest, size = _hash_stream(source, max_bytes)
        source.seek(0)
        return source, size, digest, False
    # Not seekable, or positioned mid-stream (Image.open always seeks to 0): read the rest into memory.
    data = source.read(max_bytes + 1)
    _check_bytes(len(data), max_bytes)
    return io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest(), True


def _check_bytes(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ImageRejected(f"The file is {_mb(size)}, above the {_mb(max_bytes)} limit (OFFLOAD_MAX_IMAGE_BYTES).")
    if size == 0:
        raise ImageRejected("The file is empty (0 bytes), so there is no image to resize.")


def _hash_stream(fp: BinaryIO, max_bytes: int) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := fp.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:  # a stream that grew, or a non-file we could not stat
            _check_bytes(size, max_bytes)
        h.update(chunk)
    _check_bytes(size, max_bytes)
    return h.hexdigest(), size


_SNIFF: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"BM", "a BMP image"),
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
)


def describe_unknown(head: bytes) -> str:
    """Name what a refused file most likely is, from its first bytes, without running any parser on it."""
    for magic, what in _SNIFF:
        if head.startswith(magic):
            return what
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in head.lower():
        return "an SVG drawing"
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return "an AVIF image"
    try:
        text_head = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a file of an unknown type"
    if all(c.isprintable() or c in "\t\r\n" for c in text_head):
        return "a text file"
    return "a file of an unknown type"


_BOMB = re.compile(r"\((\d+) pixels\)")


@contextmanager
def pillow_errors(max_pixels: int, what: str) -> Iterator[None]:
    """Turn every way Pillow can fail on hostile input into ImageRejected.

    ``DecompressionBombWarning`` is raised as an error here (not just under pytest): an image above
    Pillow's own ceiling is rejected, never decoded. ``catch_warnings`` is process-global in Python 3.11,
    which is fine for RQ workers (one job per process at a time).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        m = _BOMB.search(str(exc))
        size = f"claims {_mp(int(m.group(1)))}" if m else "claims an enormous size"
        raise ImageRejected(
            f"The file {size}, above the {_mp(max_pixels)} limit (OFFLOAD_MAX_PIXELS); "
            "it looks like a decompression bomb."
        ) from exc
    except Image.UnidentifiedImageError:
        raise  # handled by open_image, which knows the bytes
    except MemoryError as exc:
        raise ImageRejected(f"The image is too large to {what} within the worker's memory.") from exc
    except Exception as exc:  # OSError (truncated), SyntaxError (bad CRC), ValueError, struct.error, ...
        raise ImageRejected(
            f"The file is damaged or incomplete and cannot be {what}: {type(exc).__name__}: {exc}"
        ) from exc


def open_image(fp: BinaryIO, max_pixels: int) -> Image.Image:
    """``Image.open`` limited to ALLOWED_FORMATS, then the pixel cap on the header's dimensions.

    Nothing is decoded yet: Pillow has only parsed the header when this returns. pillow-heif is loaded
    only when the file sniffs as HEIF (:func:`formats_for`): its opener and libheif cost a worker ~4 MB
    of RSS, which a worker that never sees a HEIC upload should not carry.
    """
    start = fp.tell()
    head = fp.read(16)
    fp.seek(start)
    try:
        with pillow_errors(max_pixels, "read"):
            im = Image.open(fp, formats=formats_for(head))
    except Image.UnidentifiedImageError as exc:
        fp.seek(start)
        what = describe_unknown(fp.read(64))
        raise ImageRejected(
            f"The file is {what}, not an image Offload can resize (accepted: {FRIENDLY_FORMATS})."
        ) from exc
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"The file declares an empty {width}x{height} image.")
    if width * height > max_pixels:
        im.close()
        raise too_many_pixels(width, height, max_pixels)
    return im


def guarded(max_pixels: int, what: str, fn: Callable[[], T]) -> T:
    """Run one Pillow step (load, resize, convert, encode) under :func:`pillow_errors`."""
    with pillow_errors(max_pixels, what):
        return fn()


# ---------------------------------------------------------------- JPEG: decode at a reduced DCT scale
#: libjpeg scales a JPEG by M/8 while decoding, for M = 1..16 (libjpeg-turbo and IJG libjpeg 7+:
#: ``jpeg_core_output_dimensions``, jdmaster.c). ``Image.draft`` only asks for 1/1, 1/2, 1/4 or 1/8: its
#: scale reaches libjpeg as ``scale_num = 1, scale_denom = scale`` (Pillow src/libImaging/JpegDecode.c),
#: and libjpeg picks the smallest M/8 at least that large. Asking for 1/3 therefore gets 3/8: a 6000x4000
#: photo decodes as 2250x1500 (13.5 MB) instead of 3000x2000 (24 MB) for a 1600 px rendition.
THREE_EIGHTHS_DENOM = 3
#: 3/8 is used only when the step left after it is at least this large. A 3/8 decode is blockier than a
#: 1/2 one, and a short residual resize does not smooth that out. Pixel SSIM of the 1600 px rendition vs.
#: naive's, on bench/images.py's photo at 10 sizes (4300 to 6400 px wide): at 1.01x and 1.08x steps 3/8
#: gave 0.9874 and 0.9903, against 0.9910 and 0.9924 at 1/2; at 1.15x and 1.2x it was equal (0.9925,
#: 0.9933); from 1.25x up it was better: 0.9942 vs 0.9936, and 0.9956 vs 0.9947 at 1.41x (24 MP). 1.25 is
#: also ``FIRST_REDUCING_GAP`` in workers.imaging.
THREE_EIGHTHS_MIN_STEP = 1.25
#: Start-of-frame markers of DCT-based Huffman JPEGs: baseline, extended sequential, progressive (ITU-T
#: T.81, table B.1). Nothing else gets 3/8.
DCT_FRAME_MARKERS = frozenset((0xC0, 0xC1, 0xC2))
#: Lossless JPEG frames (SOF3, 7, 11, 15) get no ``draft`` at all. libjpeg-turbo never scales them, whatever
#: is asked: ``master_selection`` resets the scale to 1/1 (jdmaster.c). Their rows would then be wider than
#: the scaled size declared to Pillow, which sizes its row buffer from that (the libjpeg-turbo 3.2 in
#: Pillow 13's wheels stops with "broken data stream" instead, so such a file was rejected as damaged).
LOSSLESS_FRAME_MARKERS = frozenset((0xC3, 0xC7, 0xCB, 0xCF))
_NO_LENGTH = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0-7: markers without a length field
_MAX_SEGMENTS = 256
#: The probe image: neither side a multiple of 8, so libjpeg's rounding up is checked too.
_PROBE_SIZE = (61, 21)


def _scaled(n: int, eighths: int) -> int:
    """``n`` pixels at ``eighths``/8 scale, as libjpeg rounds it: ``jdiv_round_up(n * eighths, 8)``."""
    return -(-n * eighths // 8)


def draft_jpeg(im: Image.Image, fp: BinaryIO, size: tuple[int, int]) -> Box | None:
    """Set ``im`` (an unloaded JPEG) to decode at the smallest DCT scale still >= ``size``.

    Returns the box the whole source maps to in the decoded image, ``(0, 0, width * s, height * s)``
    (what ``Image.draft`` returns, and what Pillow's own ``thumbnail`` resizes from), or None when
    ``draft`` did nothing. A scaled decode is ``ceil(width * s)`` wide, so when the width is not a
    multiple of 1/s its last column holds only part of a pixel's worth of source: resizing the whole
    decoded image would stretch the picture by up to one decoded pixel towards the right and bottom.

    The scale is Pillow's 1/2, 1/4 or 1/8, or 3/8 (see :data:`THREE_EIGHTHS_DENOM`) when all of these hold:
    it leaves a step of at least :data:`THREE_EIGHTHS_MIN_STEP`; ``draft`` chose 1/2 and set ``im`` up as
    this module expects; the file is a DCT JPEG (:func:`jpeg_frame_marker`); and this process's libjpeg
    was seen to decode at exactly the size declared for it (:func:`libjpeg_scales_three_eighths`).
    Otherwise ``im`` stays as ``draft`` left it. Lossless JPEGs are not drafted at all
    (:data:`LOSSLESS_FRAME_MARKERS`).
    """
    width, height = im.size
    marker = jpeg_frame_marker(fp)
    if marker in LOSSLESS_FRAME_MARKERS:
        return None
    drafted = im.draft(im.mode, size)
    if drafted is None:
        return None
    step = min(width * 3 / 8 / size[0], height * 3 / 8 / size[1])
    if (
        step >= THREE_EIGHTHS_MIN_STEP
        and marker in DCT_FRAME_MARKERS
        and isinstance(im, ImageFile.ImageFile)  # always, once draft() did something: it is a JpegImageFile
        and _drafted_at_half(im, width, height)
        and libjpeg_scales_three_eighths()
    ):
        _declare_scale(im, THREE_EIGHTHS_DENOM, (_scaled(width, 3), _scaled(height, 3)))
        return (0.0, 0.0, width * 3 / 8, height * 3 / 8)
    return drafted[1]


def _drafted_at_half(im: ImageFile.ImageFile, width: int, height: int) -> bool:
    """Whether ``draft`` left ``im`` as Pillow 13 does for 1/2: so we know what :func:`_declare_scale` changes."""
    half = (_scaled(width, 4), _scaled(height, 4))
    return (
        im.decoderconfig == (2, 0)
        and im.size == half
        and len(im.tile) == 1
        and tuple(im.tile[0][1] or ()) == (0, 0, *half)
    )


def _declare_scale(im: ImageFile.ImageFile, denom: int, size: tuple[int, int]) -> None:
    """Make Pillow decode ``im`` with libjpeg's ``scale_denom = denom`` into an image of ``size``.

    Sets what ``JpegImageFile.draft`` sets (PIL/JpegImagePlugin.py): the size, the single tile's extents,
    and ``decoderconfig = (scale, draft)``, whose scale the decoder hands to libjpeg. ``size`` must be
    exactly what libjpeg will write: nothing checks the rows it writes against the buffer Pillow sized
    from this width (src/libImaging/JpegDecode.c).
    """
    codec, _, offset, args = im.tile[0]
    im._size = size  # the attribute draft() itself sets
    im.tile = [ImageFile._Tile(codec, (0, 0, *size), offset, args)]
    im.decoderconfig = (denom, 0)


def jpeg_frame_marker(fp: BinaryIO) -> int | None:
    """The SOFn marker code of the JPEG in ``fp`` (0xC0 baseline, 0xC2 progressive, ...), or None.

    Pillow reads the same header but keeps only whether it is progressive (JpegImagePlugin ``SOF``). The
    walk stops at the first SOFn, at SOS or EOI, at anything that is not a marker, or after
    :data:`_MAX_SEGMENTS` segments; ``fp``'s position is restored.
    """
    start = fp.tell()
    try:
        fp.seek(0)
        if fp.read(2) != b"\xff\xd8":
            return None
        for _ in range(_MAX_SEGMENTS):
            if fp.read(1) != b"\xff":
                return None
            code = fp.read(1)
            while code == b"\xff":  # fill bytes
                code = fp.read(1)
            if not code or code[0] in (0xD9, 0xDA):  # end of file, EOI, SOS: no frame header
                return None
            if 0xC0 <= code[0] <= 0xCF and code[0] not in (0xC4, 0xC8, 0xCC):  # not DHT, JPG, DAC
                return code[0]
            if code[0] in _NO_LENGTH:
                continue
            length = fp.read(2)
            if len(length) < 2:
                return None
            fp.seek(int.from_bytes(length, "big") - 2, io.SEEK_CUR)
        return None
    finally:
        fp.seek(start)


@functools.cache
def libjpeg_scales_three_eighths() -> bool:
    """Whether this process's libjpeg decodes at 3/8 when asked for 1/3, tried once on a tiny white JPEG.

    The probe is safe whatever libjpeg does. It declares the full width, so rows of any width libjpeg
    may return fit Pillow's row buffer (sized from the declared width, src/decode.c ``_setimage``), and
    the columns libjpeg leaves unwritten stay black (that buffer is calloc'd). A height other than 3/8's
    ends in a decoder error. The answer is yes only if exactly ``ceil(3 * width / 8)`` columns come back
    white and the rest black. Every real decode then declares the size libjpeg's formula gives.
    """
    width, height = _PROBE_SIZE
    try:
        buf = io.BytesIO()
        Image.new("RGB", _PROBE_SIZE, (255, 255, 255)).save(buf, "JPEG", quality=95)
        with Image.open(buf, formats=("JPEG",)) as im:
            _declare_scale(im, THREE_EIGHTHS_DENOM, (width, _scaled(height, 3)))
            im.load()
            row = im.convert("L").crop((0, 0, width, 1)).tobytes()
    except Exception:  # any failure means "do not use 3/8"
        return False
    expected = _scaled(width, 3)
    return all(v > 200 for v in row[:expected]) and not any(row[expected:])
