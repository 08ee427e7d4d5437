"""The three things the imaging pipeline needs from Pillow that no public Pillow API does.

Everything else in :mod:`workers.imaging` uses Pillow's documented API only
(https://pillow.readthedocs.io/en/stable/reference/Image.html). What is here leans on how Pillow
implements PNG reading (PIL/PngImagePlugin.py), which its documentation does not promise; each
function is pinned by ``tests/workers/test_pillowcompat.py``, which fails with a message naming the
installed Pillow version when one of them stops behaving as described. Checked with Pillow 13.0.0.

* :func:`decode_png_rows`: Pillow's PNG row decoder (unfiltering), for the banded PNG decode in
  :mod:`workers.imaging.png`. Reached through the public ``Image.frombytes``, but which decoder
  ``"zip"`` is, and that it takes PNG-filtered scanlines in a zlib stream, is Pillow's internal codec
  registry (``PngImageFile`` decodes its IDAT data with it).
* :func:`png_chunk_reader`: Pillow's own handlers for PNG metadata chunks (``PngStream.call``, on the
  ``png`` attribute ``PngImageFile`` keeps until it is loaded), to read the chunks after the pixels
  (eXIf, text/XMP) into ``im.info`` when the band decoder, not ``load()``, read the pixels.
* :func:`exif_without_load`: ``Image.Image.getexif`` (public) called on a PNG past its own override,
  which loads the whole image when ``info`` holds no eXIf; the base method reads only ``info``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

import PIL
from PIL import Image, PngImagePlugin

__all__ = ["PILLOW_VERSION", "decode_png_rows", "exif_without_load", "png_chunk_reader"]

PILLOW_VERSION: str = PIL.__version__


def decode_png_rows(mode: str, size: tuple[int, int], zlib_data: bytes) -> Image.Image:
    """An 8-bit, non-interlaced PNG's rows, unfiltered by Pillow's PNG decoder.

    ``zlib_data`` is a zlib stream of ``size[1]`` PNG scanlines (each a filter-type byte and
    ``size[0]`` pixels of ``mode``, which is also the rawmode). Raises ValueError on an unknown filter
    type, as a full ``load()`` does.
    """
    return Image.frombytes(mode, size, zlib_data, "zip", mode)


def png_chunk_reader(im: Image.Image, fp: BinaryIO) -> Callable[[bytes, int, int], object] | None:
    """Pillow's chunk handler for ``im``, a PNG opened from ``fp`` and not loaded, or None.

    The handler is called as ``handler(chunk_type, data_offset, length)`` with ``fp`` positioned at the
    chunk's data; it reads the data (not the CRC) and stores what it means in ``im.info``, with
    Pillow's own size limits and keys. It raises AttributeError for a chunk type Pillow has no
    handler for. None when ``im`` is not such a PNG (another reader, or already loaded).
    """
    stream = getattr(im, "png", None)
    if not isinstance(stream, PngImagePlugin.PngStream) or stream.fp is not fp:
        return None
    return stream.call


def exif_without_load(im: Image.Image) -> Image.Exif:
    """``im.getexif()`` from what ``im.info`` already holds, never decoding the pixels to find more."""
    return Image.Image.getexif(im)
