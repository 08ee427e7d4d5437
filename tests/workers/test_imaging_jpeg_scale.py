"""JPEG decode at a reduced DCT scale through Pillow's public ``draft``: the source's box, lossless JPEGs.

Pixels are compared with a full-size decode resized by Pillow (LANCZOS), which is what the scaled decode
stands in for. A test picture of thin black lines on white shows any misregistration: a shift of a
fraction of a pixel moves a line edge by ~100 levels.
"""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

import tests.support.imagegen as gen
from workers.imaging import Variant, render_variants
from workers.imaging.decode import draft_jpeg, jpeg_frame_marker


def lines_image(width: int, height: int) -> Image.Image:
    """4 px black lines every 60 px, both ways, on white."""
    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for x in range(20, width, 60):
        draw.rectangle((x, 0, x + 3, height), fill=(0, 0, 0))
    for y in range(20, height, 60):
        draw.rectangle((0, y, width, y + 3), fill=(0, 0, 0))
    return im


def difference(a: Image.Image, b: Image.Image) -> tuple[float, int]:
    """Mean (over channels and pixels) and max absolute difference, in levels."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3, max(high for _, high in diff.getextrema())


def full_then_resized(data: bytes, size: tuple[int, int]) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.resize(size, Image.Resampling.LANCZOS)


def drafted(data: bytes, size: tuple[int, int]) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    im = Image.open(io.BytesIO(data))
    return im, draft_jpeg(im, io.BytesIO(data), size)


def lossless_grey_jpeg(width: int, height: int) -> bytes:
    """An 8-bit lossless (SOF3) greyscale JPEG, every sample 128 (ITU-T T.81 annex H).

    Pillow cannot write lossless JPEG. With predictor 1 every prediction is 128 (the first sample's is
    2^(P-1)), so every difference is 0: one Huffman code ("0", category 0) per sample, padded with 1 bits.
    """

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload

    sof3 = segment(0xC3, struct.pack(">BHHB", 8, height, width, 1) + bytes((1, 0x11, 0)))
    dht = segment(0xC4, bytes((0x00, 1, *[0] * 15, 0)))  # table 0: one code of length 1, for category 0
    sos = segment(0xDA, bytes((1, 1, 0x00, 1, 0, 0)))  # component 1, table 0; predictor 1, Se 0, Ah/Al 0
    bits = width * height
    scan = bytes(bits // 8) + (bytes(((1 << (8 - bits % 8)) - 1,)) if bits % 8 else b"")
    return b"\xff\xd8" + sof3 + dht + sos + scan + b"\xff\xd9"


# ---------------------------------------------------------------- Pillow's draft, and the source box
@pytest.mark.parametrize(("width", "height"), [(1500, 1000), (1100, 733)])
def test_a_photo_decodes_at_half_scale_through_pillows_draft(width, height):
    im, box = drafted(gen.encode(gen.photo_image(width, height), "JPEG"), (400, 267))
    half = (-(-width // 2), -(-height // 2))
    assert (im.size, box) == (half, (0, 0, width / 2, height / 2))
    im.load()
    assert im.size == half


def test_a_small_photo_is_not_drafted_below_the_rendition():
    im, box = drafted(gen.encode(gen.photo_image(700, 466), "JPEG"), (400, 267))
    assert im.size == (700, 466) and box in (None, (0, 0, 700, 466))


# ---------------------------------------------------------------- the source box at 1/2
@pytest.mark.parametrize(("width", "height"), [(1101, 733), (1001, 667)])
def test_odd_sized_jpeg_renditions_are_not_stretched(width, height):
    """At 1/2 a 1101 px JPEG decodes 551 px wide, the last column half a source pixel's worth."""
    data = gen.encode(lines_image(width, height), "JPEG", quality=95)
    _, [r] = render_variants(data, (Variant("v", 400, "png"),))
    out = Image.open(io.BytesIO(r.data))
    mean, worst = difference(out, full_then_resized(data, out.size))
    assert mean < 3.0 and worst < 48, (mean, worst)  # resizing the whole decode: mean ~8, max ~130


# ---------------------------------------------------------------- frame markers, lossless JPEG
def test_frame_marker_of_each_kind_and_position_restored():
    baseline = io.BytesIO(gen.encode(gen.photo_image(64, 48), "JPEG"))
    baseline.seek(7)
    assert jpeg_frame_marker(baseline) == 0xC0
    assert baseline.tell() == 7
    assert jpeg_frame_marker(io.BytesIO(gen.encode(gen.photo_image(64, 48), "JPEG", progressive=True))) == 0xC2
    assert jpeg_frame_marker(io.BytesIO(lossless_grey_jpeg(64, 48))) == 0xC3


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"\xff\xd8\xff\xe0\x00", b"\xff\xd8junk"],
)
def test_frame_marker_is_none_without_a_frame_header(data):
    assert jpeg_frame_marker(io.BytesIO(data)) is None


def test_lossless_jpeg_is_decoded_at_full_size_not_rejected():
    """libjpeg never scales a lossless JPEG; asking it to (Pillow's draft) made the file fail as damaged."""
    data = lossless_grey_jpeg(641, 479)
    im, box = drafted(data, (200, 149))
    assert (box, im.size) == (None, (641, 479))
    info, [r] = render_variants(data, (Variant("v", 200, "png"),))
    out = Image.open(io.BytesIO(r.data))
    assert (info.format, info.width, info.height) == ("JPEG", 641, 479)
    assert out.size == (200, 149)
    assert out.convert("L").getextrema() == (128, 128)
