"""Safe opening of untrusted uploads: size cap, format allowlist, pixel cap, clear rejections.

Everything here runs *before* any pixel is decoded. A Salesforce user can upload anything, so every
failure mode of Pillow (unknown format, decompression bomb, truncated or corrupt data, plugin bugs)
is turned into :class:`~services.errors.ImageRejected` with a message a Salesforce admin can act on.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, TypeVar

from PIL import GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

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

DEFAULT_MAX_JPEG_SCANS = 100
"""Most scans (SOS segments) a JPEG may have before it is refused undecoded (``OFFLOAD_MAX_JPEG_SCANS``).

libjpeg must fully process every scan, even an empty or corrupt one, before the next, and one scan of
"EOB runs" can be a dozen bytes that cost a pass over the whole image: a 380 kB progressive JPEG with
one small scan repeated 3,000 times took a 36 MP decode past 60 s. libjpeg-turbo's answer is a scan
limit (djpeg ``-maxscans``, TurboJPEG ``TJPARAM_SCANLIMIT``, "to guard against an exploit of the
progressive JPEG format"): https://github.com/libjpeg-turbo/libjpeg-turbo/blob/main/doc/djpeg.1 and
https://github.com/libjpeg-turbo/libjpeg-turbo/blob/main/src/turbojpeg.h. Pillow does not set it, so we
count the scans ourselves (:func:`count_jpeg_scans`). 100 is the limit libjpeg-turbo's own decompression
fuzz target runs with (https://github.com/libjpeg-turbo/libjpeg-turbo/blob/main/fuzz/decompress.cc), ten
times what a photo has: 1 scan (baseline) or libjpeg's default progression, 10 (YCbCr) or 6 (grayscale),
which Pillow writes for ``progressive=True`` (tests/workers/test_imaging_jpeg_scans.py).
"""

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
        if is_interruption(exc):
            raise  # the job ran out of time: not the file's fault, and retried as a timeout
        raise ImageRejected(
            f"The file is damaged or incomplete and cannot be {what}: {type(exc).__name__}: {exc}"
        ) from exc


def is_interruption(exc: BaseException) -> bool:
    """Whether ``exc`` was raised *into* the decode from outside: rq's job timeout (``JobTimeoutException``).

    rq raises it from its SIGALRM handler (https://github.com/rq/rq/blob/v2.12.0/rq/timeouts.py), so it
    surfaces at whatever Python line runs when the alarm is handled, often a Pillow step here. It derives
    from ``Exception``, so without this test :func:`pillow_errors` reported a timeout as a damaged file: a
    permanent IMAGE_REJECTED instead of a retried timeout. The imaging package does not import rq (an
    image-only process stays small): an rq timeout can only exist once ``rq.timeouts`` is imported.
    """
    timeouts = sys.modules.get("rq.timeouts")
    return timeouts is not None and isinstance(exc, timeouts.BaseTimeoutException)


def open_image(fp: BinaryIO, max_pixels: int, max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS) -> Image.Image:
    """``Image.open`` limited to ALLOWED_FORMATS, then the pixel cap on the header's dimensions, then
    (JPEG only) the scan limit (:data:`DEFAULT_MAX_JPEG_SCANS`).

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
    if im.format in ("JPEG", "MPO"):
        scans = count_jpeg_scans(fp, max_jpeg_scans)
        if scans > max_jpeg_scans:
            im.close()
            raise ImageRejected(
                f"The file is a JPEG with more than {max_jpeg_scans} scans (counted {scans} before stopping), above "
                f"the limit of {max_jpeg_scans} (OFFLOAD_MAX_JPEG_SCANS); a normal photo has 1 to about 10. Such a "
                "file can hold a worker for minutes while it decodes, so it is refused undecoded."
            )
    return im


def guarded(max_pixels: int, what: str, fn: Callable[[], T]) -> T:
    """Run one Pillow step (load, resize, convert, encode) under :func:`pillow_errors`."""
    with pillow_errors(max_pixels, what):
        return fn()


# ---------------------------------------------------------------- JPEG: decode at a reduced DCT scale
#: Lossless JPEG frames (SOF3, 7, 11, 15) get no ``draft`` at all. libjpeg-turbo never scales them, whatever
#: is asked: ``master_selection`` resets the scale to 1/1 (jdmaster.c). Their rows would then be wider than
#: the scaled size declared to Pillow, which sizes its row buffer from that (the libjpeg-turbo 3.2 in
#: Pillow 13's wheels stops with "broken data stream" instead, so such a file was rejected as damaged).
#: See https://github.com/libjpeg-turbo/libjpeg-turbo/blob/main/src/jdmaster.c
LOSSLESS_FRAME_MARKERS = frozenset((0xC3, 0xC7, 0xCB, 0xCF))
_NO_LENGTH = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0-7: markers without a length field
_MAX_SEGMENTS = 256


def draft_jpeg(im: Image.Image, fp: BinaryIO, size: tuple[int, int]) -> Box | None:
    """Set ``im`` (an unloaded JPEG) to decode at the smallest DCT scale (1/2, 1/4, 1/8) still >= ``size``.

    Pillow's public ``Image.draft`` does it
    (https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.Image.draft) and returns the
    box the whole source maps to in the decoded image, ``(0, 0, width * s, height * s)``, which is what
    this returns too (None when ``draft`` did nothing). Resize from that box, not the whole decoded image:
    a scaled decode is ``ceil(width * s)`` wide, so when the width is not a multiple of 1/s its last column
    holds only part of a pixel's worth of source, and resizing all of it would stretch the picture by up
    to one decoded pixel towards the right and bottom. Lossless JPEGs are not drafted at all
    (:data:`LOSSLESS_FRAME_MARKERS`).
    """
    if jpeg_frame_marker(fp) in LOSSLESS_FRAME_MARKERS:
        return None
    drafted = im.draft(im.mode, size)
    return None if drafted is None else drafted[1]


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


# ---------------------------------------------------------------- JPEG: count scans before decoding
#: A marker inside entropy-coded data: 0xFF followed by anything but 0x00 (a stuffed 0xFF data byte),
#: RST0-7 (restart markers, part of the scan) or 0xFF (a fill byte: the marker code follows it).
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def count_jpeg_scans(fp: BinaryIO, limit: int) -> int:
    """Count the SOS segments of the JPEG in ``fp`` up to its EOI, stopping once ``limit`` is exceeded.

    A walk over the marker segments (ITU-T T.81, B.1.1; https://www.w3.org/Graphics/JPEG/itu-t81.pdf):
    SOI, then ``0xFF code`` segments with a 2-byte length (markers without one, TEM and RSTn, are skipped
    by themselves). After each SOS header the entropy-coded data runs up to the next marker that is not a
    stuffed ``0xFF00`` nor an RSTn (:data:`_ENTROPY_END`, searched in C by ``re``, so a 10 MB photo costs a
    few milliseconds). An MPO's later pictures come after the first EOI and are not counted: Pillow decodes
    the first. A malformed stream ends the count where it breaks (Pillow then judges the file). ``fp``'s
    position is restored; the bytes are read in place when ``fp`` is a BytesIO or a real file (mmap).
    """
    start = fp.tell()
    try:
        with _bytes_of(fp) as data:
            return _count_scans(data, limit)
    finally:
        fp.seek(start)


def _count_scans(data: memoryview | mmap.mmap | bytes, limit: int) -> int:
    size = len(data)
    if data[0:2] != b"\xff\xd8":
        return 0
    pos, scans = 2, 0
    while pos + 1 < size:
        if data[pos] != 0xFF:
            return scans
        code = data[pos + 1]
        pos += 2
        if code == 0xFF:  # a fill byte: the marker code is still to come
            pos -= 1
            continue
        if code == 0xD9:  # EOI
            return scans
        if code in _NO_LENGTH:
            continue
        if pos + 2 > size:
            return scans
        pos += int.from_bytes(data[pos:pos + 2], "big")
        if code == 0xDA:  # SOS: its header, then entropy-coded data up to the next real marker
            scans += 1
            if scans > limit:
                return scans
            found = _ENTROPY_END.search(data, pos)
            if found is None:
                return scans
            pos = found.start()
    return scans


@contextmanager
def _bytes_of(fp: BinaryIO) -> Iterator[memoryview | mmap.mmap | bytes]:
    """``fp``'s whole content without a copy where possible (BytesIO buffer, file mmap), else read."""
    if isinstance(fp, io.BytesIO):
        view = fp.getbuffer()
        try:
            yield view
        finally:
            view.release()
        return
    try:
        fileno = fp.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fileno = -1
    if fileno >= 0 and os.fstat(fileno).st_size > 0:
        with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped
        return
    fp.seek(0)
    yield fp.read()
