"""Bounded-memory PNG decode: the image arrives in bands of rows, never as one full-size bitmap.

A PNG has no reduced-scale decode (unlike JPEG's DCT scaling), and Pillow stores RGB at 4 bytes/px, so
``load()`` of a 12 MP PNG is a 48 MB bitmap for a 1600 px rendition. Here the zlib stream is inflated
incrementally, and every band of rows is handed to Pillow's own PNG row decoder (the "zip" decoder
that ``PngImageFile`` uses, through :func:`~workers.imaging.pillowcompat.decode_png_rows`, which pins
that behaviour to a test):

* the band's filtered rows are re-wrapped as a zlib stream of stored blocks (framing and a checksum,
  no compression work);
* above the band's first row, the previous band's last *reconstructed* row is re-emitted with filter
  type 0 (None), so Up/Average/Paeth of the band's first real row unfilter exactly as in one pass,
  and that extra row is dropped afterwards;
* palette and transparency come from the header, as Pillow parsed it.

So unfiltering stays in Pillow's C decoder and the pixels are bit-identical to a full ``load()``
(tests compare every filter type and colour type). The price is inflating in Python (with python-zlib-ng:
~0.10 s of CPU for a 12 MP PNG, against ~0.14 s with the interpreter's zlib 1.2.13), then once more
through Pillow's decoder (stored blocks: a copy and a checksum). Only plain 8-bit, non-interlaced,
non-animated PNGs take this path; anything else (16-bit, 1/2/4-bit, interlaced, APNG) returns ``None``
from :func:`png_layout` and gets the normal full decode.

Safety: the header's pixel cap has already run (``open_image``); inflating is bounded per call, and
never produces more than ``height * (1 + width * bytes_per_pixel)`` bytes in total, so a zlib bomb
costs no memory; missing rows raise OSError ("truncated"), which the caller maps to ImageRejected.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image
from zlib_ng import zlib_ng

from workers.imaging.ops import normalise_mode
from workers.imaging.pillowcompat import decode_png_rows, png_chunk_reader
from workers.imaging.resize import StreamingResizer, residual_kernel

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: colour type -> (Pillow mode and rawmode, bytes per pixel) at bit depth 8
_MODES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}
#: Compressed IDAT bytes read per step: bounds memory whatever the chunk lengths claim.
_READ = 1 << 14
#: Filtered bytes per band: 64 kB (5 rows of a 4000 px RGB image). Larger bands mean fewer Pillow calls
#: (128 kB: ~18 ms less CPU on the 12 MP PNG) but more peak RSS (+2.4 MB at 128 kB, ~+5 MB at 512 kB),
#: and 2 MB decides that PNG's "40 % of naive" goal (docs/benchmarks.md, "Images").
_BAND_BYTES = 1 << 16
#: Chunks after the pixels that can change what the pipeline does (EXIF/XMP orientation).
_TRAILING = (b"eXIf", b"iTXt", b"tEXt", b"zTXt")


@dataclass(frozen=True)
class PngLayout:
    """What band decoding needs from the header."""

    width: int
    height: int
    colour_type: int
    palette: bytes | None  # PLTE data, for colour type 3
    idat_offset: int  # file offset of the first IDAT chunk's length field

    @property
    def mode(self) -> str:
        """Pillow's mode, which is also the rawmode of the rows, for 8-bit PNGs."""
        return _MODES[self.colour_type][0]

    @property
    def stride(self) -> int:
        """Bytes per filtered row: the filter-type byte plus the pixels."""
        return 1 + self.width * _MODES[self.colour_type][1]


def _read_exact(fp: BinaryIO, n: int) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise OSError("image file is truncated")
    return data


def png_layout(fp: BinaryIO) -> PngLayout | None:
    """Parse the chunks before the first IDAT; ``None`` when the PNG needs Pillow's full decode.

    Pillow has already parsed and CRC-checked these chunks in ``Image.open``; this only reads what it
    does not expose (the raw PLTE bytes, the IDAT offset).
    """
    fp.seek(0)
    if fp.read(8) != _SIGNATURE:
        return None
    length, cid = struct.unpack(">I4s", _read_exact(fp, 8))
    if cid != b"IHDR" or length != 13:
        return None
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", _read_exact(fp, 13))
    fp.seek(4, io.SEEK_CUR)
    if depth != 8 or colour not in _MODES or interlace != 0 or width == 0 or height == 0:
        return None
    palette = None
    while True:
        offset = fp.tell()
        length, cid = struct.unpack(">I4s", _read_exact(fp, 8))
        if cid == b"IDAT":
            if colour == 3 and palette is None:
                return None  # a palette image without a palette: let Pillow decide what that is
            return PngLayout(width, height, colour, palette, offset)
        if cid in (b"acTL", b"IEND"):  # animated (frames are composited by Pillow), or no pixels at all
            return None
        if cid == b"PLTE" and colour == 3:
            palette = _read_exact(fp, length)
            fp.seek(4, io.SEEK_CUR)
        else:
            fp.seek(length + 4, io.SEEK_CUR)


def _raw_rows(fp: BinaryIO, layout: PngLayout, band_rows: int) -> Iterator[bytes]:
    """Inflate the IDAT stream, yielding ``band_rows`` filtered rows at a time (the last band may be short)."""
    fp.seek(layout.idat_offset)
    inflater = zlib_ng.decompressobj()
    total = layout.height * layout.stride
    want = band_rows * layout.stride
    produced = 0
    pending = bytearray()
    remaining = -1  # bytes left in the current IDAT chunk; -1: at the first chunk's header
    tail = b""  # compressed input the inflater has not consumed yet
    while produced < total:
        # Never inflate past the current band: bounds memory by the band, not by what the file claims.
        out = inflater.decompress(tail, min(total - produced, want - len(pending)))
        tail = inflater.unconsumed_tail
        if out:
            produced += len(out)
            if not pending and (len(out) == want or produced == total):
                yield out  # the common case: a whole band from one call, no copy
                continue
            pending += out
            if len(pending) == want or produced == total:
                yield bytes(pending)
                pending.clear()
            continue
        if inflater.eof:
            raise OSError("image file is truncated (zlib stream ends before the last row)")
        if tail:  # no output although input is left: cannot happen with a positive max_length
            raise OSError("corrupt zlib stream")
        while remaining <= 0:  # next IDAT chunk (zero-length IDATs are legal)
            if remaining == 0:
                fp.seek(4, io.SEEK_CUR)  # CRC of the previous IDAT (Pillow does not check it either)
            length, cid = struct.unpack(">I4s", _read_exact(fp, 8))
            if cid != b"IDAT":
                raise OSError("image file is truncated (IDAT data ends before the last row)")
            remaining = length
            if remaining == 0:
                fp.seek(4, io.SEEK_CUR)
                remaining = -1
        tail = _read_exact(fp, min(remaining, _READ))
        remaining -= len(tail)


def _stored_zlib(*pieces: bytes) -> bytes:
    """The zlib stream of ``pieces`` in stored (uncompressed) deflate blocks.

    What ``zlib.compress(data, 0)`` makes, built directly: measured 5x faster, as the interpreter's
    zlib 1.2.13 pushes level-0 input through its sliding window (68 ms vs 13 ms per 36 MB).
    """
    data = b"".join(pieces) if len(pieces) != 1 else pieces[0]
    view = memoryview(data)
    parts: list[bytes | memoryview] = [b"\x78\x01"]  # deflate, 32 KB window, no preset dictionary
    for start in range(0, len(data), 0xFFFF):
        block = view[start : start + 0xFFFF]
        final = 1 if start + 0xFFFF >= len(data) else 0
        parts += (struct.pack("<BHH", final, len(block), 0xFFFF ^ len(block)), block)
    if not data:
        parts.append(b"\x01\x00\x00\xff\xff")
    parts.append(struct.pack(">I", zlib_ng.adler32(data)))
    return b"".join(parts)


def iter_bands(
    fp: BinaryIO, layout: PngLayout, band_rows: int, transparency: object = None
) -> Iterator[tuple[Image.Image, int]]:
    """Decode the image as ``(band, first)``: Pillow images of ``band_rows`` new rows (the last band may
    be shorter), whose new rows start at row ``first``.

    Every band but the first starts with the row above it (filter None, so it decodes to itself), hence
    ``first`` is 1 there: callers skip that row (``reduce(box=...)`` does it without a copy).
    ``transparency`` is the source's ``info["transparency"]`` (from tRNS), copied to every band.
    """
    previous = b""  # last reconstructed row of the previous band, unfiltered
    mode = layout.mode
    for raw in _raw_rows(fp, layout, band_rows):
        rows = len(raw) // layout.stride
        prefix = b"\x00" + previous if previous else b""
        height = rows + (1 if previous else 0)
        # Raises ValueError ("cannot decode image data") on an unknown filter type, like a full load.
        band = decode_png_rows(mode, (layout.width, height), _stored_zlib(prefix, raw))
        if layout.palette is not None:
            band.putpalette(layout.palette, "RGB")
        if transparency is not None:
            band.info["transparency"] = transparency
        previous = band.crop((0, height - 1, layout.width, height)).tobytes()
        yield band, 1 if prefix else 0


def _band_rows(layout: PngLayout, factor_y: int) -> int:
    """Rows per band: about :data:`_BAND_BYTES` of filtered data, a multiple of the reduce factor (so
    Pillow's box reduce sees the same blocks as in one pass)."""
    rows = max(1, _BAND_BYTES // layout.stride)
    return max(1, rows // factor_y) * factor_y


def resize_png(
    im: Image.Image,
    fp: BinaryIO,
    size: tuple[int, int],
    reducing_gap: float,
    resample: Image.Resampling | None = None,
) -> Image.Image | None:
    """``normalise_mode(im).resize(size, resample, reducing_gap=reducing_gap)`` without the full bitmap.

    ``resample`` defaults to :func:`residual_kernel` of the step left after the box reduce. Same steps
    as Pillow's ``resize``: box-reduce by ``int(scale / reducing_gap)`` (per band; bands are whole
    reduce blocks), then the kernel on the reduced rows (:class:`StreamingResizer`); RGBA is
    premultiplied for both, as Pillow does. The LANCZOS/BICUBIC passes run horizontal-first, the order
    Pillow picks for a whole photo-sized image (it may pick the other for other shapes: 1-2 levels on
    photos). Returns ``None`` when the PNG is not a plain 8-bit one; the caller then falls back to
    ``im.load()``, which seeks to the pixels itself. Reads the chunks after the image data too, so a
    late eXIf (or XMP) orientation lands in ``im.info`` as after a full load.
    """
    layout = png_layout(fp)
    if layout is None or (layout.width, layout.height) != im.size:
        return None
    width, height = im.size
    fx = int(width / size[0] / reducing_gap) or 1
    fy = int(height / size[1] / reducing_gap) or 1
    if resample is None:
        resample = residual_kernel(max(width / fx / size[0], height / fy / size[1]))
    resizer: StreamingResizer | None = None
    for band, first in iter_bands(fp, layout, _band_rows(layout, fy), im.info.get("transparency")):
        work = normalise_mode(band)
        if work.mode == "RGBA":
            work = work.convert("RGBa")
        reduced = work.reduce((fx, fy), box=(0, first, width, band.height))
        if resizer is None:
            reduced_size = (-(-width // fx), -(-height // fy))
            resizer = StreamingResizer(reduced.mode, reduced_size, size, (0, 0, width / fx, height / fy), resample)
        resizer.add(reduced)
        band.close()
    assert resizer is not None
    out = resizer.result()
    _read_trailing_chunks(im, fp, layout)
    return out.convert("RGBA") if out.mode == "RGBa" else out


def _read_trailing_chunks(im: Image.Image, fp: BinaryIO, layout: PngLayout) -> None:
    """Parse the metadata chunks after the last IDAT into ``im.info``, as ``load()`` would.

    Only what the pipeline reads (eXIf, and text chunks, where Pillow looks for XMP orientation), with
    Pillow's own chunk handlers (:func:`~workers.imaging.pillowcompat.png_chunk_reader`: its size
    limits, its ``info`` keys). A damaged trailer ends the walk quietly, as in Pillow's ``load_end``:
    the pixels are already decoded.
    """
    read_chunk = png_chunk_reader(im, fp)
    if read_chunk is None:
        return
    fp.seek(layout.idat_offset)
    try:
        while True:
            length, cid = struct.unpack(">I4s", _read_exact(fp, 8))
            if cid == b"IEND":
                return
            if cid in _TRAILING:
                read_chunk(cid, fp.tell(), length)
            else:
                fp.seek(length, io.SEEK_CUR)
            fp.seek(4, io.SEEK_CUR)  # CRC
    except (OSError, EOFError, SyntaxError, UnicodeDecodeError, struct.error, ValueError):
        return
