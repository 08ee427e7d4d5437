"""workers.imaging.pillowcompat: the Pillow behaviour no public API promises, checked on the installed Pillow.

Each test fails with a message naming the Pillow version, so an upgrade that changes one of these says
so at once instead of surfacing as wrong pixels or a lost orientation elsewhere.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

import tests.support.imagegen as gen
from workers.imaging import pillowcompat
from workers.imaging.pillowcompat import PILLOW_VERSION, decode_png_rows, exif_without_load, png_chunk_reader

ORIENTATION = 0x0112


def broke(what: str) -> str:
    return (
        f"Pillow {PILLOW_VERSION} no longer {what}: workers/imaging/pillowcompat.py relies on it "
        "(it was checked with Pillow 13.0.0); adapt that module before upgrading"
    )


def chunk(cid: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + cid + data + struct.pack(">I", zlib.crc32(cid + data))


def exif_block(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


def png_with_trailing(im: Image.Image, trailing: bytes) -> bytes:
    """Pillow's PNG of ``im`` with ``trailing`` (whole chunks) inserted just before IEND."""
    data = gen.encode(im, "PNG")
    assert data.endswith(chunk(b"IEND", b""))
    return data[: -len(chunk(b"IEND", b""))] + trailing + chunk(b"IEND", b"")


def test_pillow_version_is_the_installed_one():
    import PIL

    assert pillowcompat.PILLOW_VERSION == PIL.__version__


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_decode_png_rows_unfilters_every_filter_type_like_a_full_load(mode):
    """Rows filtered None, Sub, Up, Average and Paeth (Pillow's encoder picks one per row here)."""
    im = gen.photo_image(37, 23, seed=5).convert(mode)
    data = gen.encode(im, "PNG")
    full = Image.open(io.BytesIO(data))
    full.load()
    # the IDAT payload of Pillow's own file, filter bytes included
    pos, idat = 8, b""
    while pos < len(data):
        length, cid = struct.unpack(">I4s", data[pos : pos + 8])
        if cid == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    try:
        rows = decode_png_rows(mode, im.size, idat)
    except Exception as exc:  # any failure is the message below
        pytest.fail(broke(f'decodes PNG scanlines with Image.frombytes(..., "zip", rawmode) ({exc!r})'))
    assert rows.mode == mode and rows.size == im.size, broke("returns the declared mode and size from the zip decoder")
    assert rows.tobytes() == full.tobytes(), broke('unfilters PNG rows in its "zip" decoder as PngImageFile.load does')


def test_decode_png_rows_rejects_an_unknown_filter_type():
    with pytest.raises(ValueError):  # Pillow's message is not ours to pin
        decode_png_rows("L", (4, 1), zlib.compress(b"\x07" + bytes(4)))


def test_png_chunk_reader_reads_trailing_exif_and_text_into_info_without_loading(monkeypatch):
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp
    data = png_with_trailing(
        gen.photo_image(20, 10), chunk(b"eXIf", exif_block(6)) + chunk(b"iTXt", itxt) + chunk(b"tEXt", b"k\x00v")
    )
    fp = io.BytesIO(data)
    im = Image.open(fp)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("load() was called"))
    read_chunk = png_chunk_reader(im, fp)
    assert read_chunk is not None, broke("keeps its chunk stream (PngImageFile.png, a PngStream on fp) until load")
    pos = data.index(b"eXIf") + 4
    for cid in (b"eXIf", b"iTXt", b"tEXt"):
        start = data.index(cid, pos - 4)
        (length,) = struct.unpack(">I", data[start - 4 : start])
        fp.seek(start + 4)
        try:
            read_chunk(cid, start + 4, length)
        except Exception as exc:
            pytest.fail(broke(f"parses a {cid.decode()} chunk with PngStream.call(cid, pos, length) ({exc!r})"))
    assert im.info.get("exif", b"").endswith(exif_block(6)[6:]), broke("stores an eXIf chunk in info['exif']")
    assert xmp in str(im.info.get("XML:com.adobe.xmp")).encode(), broke("stores XMP from iTXt in info")
    assert im.info.get("k") == "v", broke("stores a tEXt chunk in info")
    assert exif_without_load(im).get(ORIENTATION) == 6, broke("reads info['exif'] in Image.getexif")


def test_png_chunk_reader_is_none_for_other_files_and_other_streams():
    jpeg = io.BytesIO(gen.encode(gen.photo_image(20, 10), "JPEG"))
    assert png_chunk_reader(Image.open(jpeg), jpeg) is None
    data = gen.encode(gen.photo_image(20, 10), "PNG")
    assert png_chunk_reader(Image.open(io.BytesIO(data)), io.BytesIO(data)) is None


def test_exif_without_load_reads_only_info(monkeypatch):
    """Pillow's own PngImageFile.getexif() loads the image when info has no eXIf; ours must not."""
    fp = io.BytesIO(gen.encode(gen.photo_image(20, 10), "PNG"))
    im = Image.open(fp)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("load() was called"))
    try:
        exif = exif_without_load(im)
    except BaseException as exc:  # pytest.fail raises BaseException subclasses too
        pytest.fail(broke(f"lets Image.Image.getexif run on an unloaded PNG without load() ({exc!r})"))
    assert ORIENTATION not in exif
    # XMP orientation in info is read there too (where the band decoder puts it)
    im2 = Image.open(io.BytesIO(gen.encode(gen.photo_image(20, 10), "PNG")))
    im2.info["XML:com.adobe.xmp"] = '<rdf:Description tiff:Orientation="3"/>'
    assert exif_without_load(im2).get(ORIENTATION) == 3, broke("reads XMP orientation from info in Image.getexif")


def test_the_public_getexif_of_a_png_still_loads(monkeypatch):
    """Why exif_without_load exists. If this fails, Pillow's public getexif no longer loads the pixels
    and the adapter may be replaced by ``im.getexif()``."""
    calls = []
    original = PngImagePlugin.PngImageFile.load

    def spy(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", spy)
    Image.open(io.BytesIO(gen.encode(gen.photo_image(20, 10), "PNG"))).getexif()
    assert calls, f"Pillow {PILLOW_VERSION}: PngImageFile.getexif() no longer loads; exif_without_load may go"
