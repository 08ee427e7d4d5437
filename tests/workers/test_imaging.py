"""workers.imaging: safe decode, correct output, no metadata, clear rejections. Images come from imagegen."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest
from PIL import Image

import tests.support.imagegen as gen
from services.errors import ConfigError, ImageRejected
from workers.imaging import (
    DEFAULT_VARIANTS_SPEC,
    Rendition,
    Variant,
    parse_variants,
    probe,
    render_variants,
)

PNG_ONLY = (Variant("v", 120, "png"),)
DEFAULTS = parse_variants(DEFAULT_VARIANTS_SPEC)


def decoded(r: Rendition) -> Image.Image:
    im = Image.open(io.BytesIO(r.data))
    im.load()
    return im


def close(actual, expected, tol: int = 8) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


# ---------------------------------------------------------------- parse_variants
def test_parse_variants_default_spec():
    assert DEFAULTS == (
        Variant("large", 1600, "jpeg"),
        Variant("medium", 800, "webp"),
        Variant("thumb", 200, "jpeg"),
    )
    assert parse_variants(" a:10:JPG , b:20:png ") == (Variant("a", 10, "jpeg"), Variant("b", 20, "png"))


@pytest.mark.parametrize(
    "spec",
    ["a:10:jpeg,a:20:png", "a:0:jpeg", "a:-5:jpeg", "a:ten:jpeg", "a:10:gif", "a:10", "a:10:jpeg,", "", ":10:png",
     "x" * 41 + ":10:png"],
)
def test_parse_variants_rejects_bad_specs(spec):
    with pytest.raises(ConfigError, match="OFFLOAD_IMAGE_VARIANTS"):
        parse_variants(spec)


# ---------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_corners_land_upright(orientation):
    data = gen.oriented_jpeg(orientation, 240, 160)
    info, [r] = render_variants(data, PNG_ONLY)
    assert info.orientation == orientation
    assert (info.width, info.height) == ((160, 240) if orientation >= 5 else (240, 160))  # as stored
    assert (r.width, r.height) == (120, 80)  # as displayed
    im = decoded(r)
    assert im.size == (120, 80)
    for (x, y), colour in (((5, 5), gen.RED), ((114, 5), gen.GREEN), ((5, 74), gen.BLUE), ((114, 74), gen.YELLOW)):
        assert close(im.getpixel((x, y)), colour, 12), (orientation, (x, y), im.getpixel((x, y)))


def test_default_variants_on_a_rotated_photo():
    stored = gen.photo_image(3000, 2000)
    data = gen.encode(stored, "JPEG", quality=90, exif=gen.exif_block(6))
    info, renditions = render_variants(data, DEFAULTS)
    assert (info.format, info.width, info.height, info.orientation) == ("JPEG", 3000, 2000, 6)
    got = [(r.variant.name, r.width, r.height, r.mime_type, r.extension) for r in renditions]
    assert got == [
        ("large", 1067, 1600, "image/jpeg", "jpg"),
        ("medium", 533, 800, "image/webp", "webp"),
        ("thumb", 133, 200, "image/jpeg", "jpg"),
    ]
    for r in renditions:
        im = decoded(r)
        assert (im.format, im.size, im.mode) == (
            {"jpg": "JPEG", "webp": "WEBP"}[r.extension],
            (r.width, r.height),
            "RGB",
        )


def test_variants_returned_in_requested_order_and_never_upscaled():
    data = gen.encode(gen.photo_image(50, 30), "PNG")
    variants = (Variant("small", 20, "png"), Variant("big", 1600, "jpeg"), Variant("same", 50, "webp"))
    _, renditions = render_variants(data, variants)
    assert [(r.variant.name, r.width, r.height) for r in renditions] == [
        ("small", 20, 12),
        ("big", 50, 30),
        ("same", 50, 30),
    ]
    assert decoded(renditions[1]).size == (50, 30)


# ---------------------------------------------------------------- colour
def test_cmyk_jpeg_without_profile_becomes_rgb():
    # Pillow writes CMYK JPEGs Adobe-style (APP14 marker, inverted values), as Photoshop does.
    data = gen.encode(gen.cmyk_image({"c": (255, 0, 0, 0), "k": (0, 0, 0, 255), "w": (0, 0, 0, 0)}), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).info.get("adobe") is not None
    _, [r] = render_variants(data, (Variant("v", 192, "jpeg"),))
    im = decoded(r)
    assert im.mode == "RGB"
    assert close(im.getpixel((32, 32)), (0, 255, 255))
    assert close(im.getpixel((96, 32)), (0, 0, 0))
    assert close(im.getpixel((160, 32)), (255, 255, 255))


def test_cmyk_jpeg_with_profile_uses_the_profile():
    blocks = {"c": (255, 0, 0, 0), "m": (0, 255, 0, 0), "k": (0, 0, 0, 255)}
    data = gen.encode(gen.cmyk_image(blocks), "JPEG", quality=95, icc_profile=gen.cmyk_icc_profile())
    _, [r] = render_variants(data, (Variant("v", 192, "png"),))
    im = decoded(r)
    assert "icc_profile" not in im.info
    # The profile's inks, not the naive (0, 255, 255) / (255, 0, 255) / (0, 0, 0).
    assert close(im.getpixel((32, 32)), gen.INKS["C"])
    assert close(im.getpixel((96, 32)), gen.INKS["M"])
    assert close(im.getpixel((160, 32)), gen.INKS["K"])


def _p3_to_srgb(rgb):
    lin = [(c / 255) ** 2.2 for c in rgb]
    xyz = gen._mat_mul(gen.rgb_to_xyz_matrix(gen.P3_PRIMARIES), lin)
    srgb = gen._mat_mul(gen._inv(gen.rgb_to_xyz_matrix(gen.SRGB_PRIMARIES)), xyz)
    enc = [12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055 for v in srgb]
    return tuple(round(min(1.0, max(0.0, v)) * 255) for v in enc)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_non_srgb_profile_converted_to_srgb(fmt):
    colour = (200, 80, 60)
    expected = _p3_to_srgb(colour)
    assert max(abs(a - b) for a, b in zip(expected, colour, strict=True)) >= 10  # a real difference to detect
    data = gen.encode(Image.new("RGB", (64, 64), colour), fmt, icc_profile=gen.rgb_icc_profile())
    _, [r] = render_variants(data, (Variant("v", 32, "png"),))
    im = decoded(r)
    assert close(im.getpixel((16, 16)), expected, 4), (im.getpixel((16, 16)), expected)
    assert "icc_profile" not in im.info


def test_srgb_profile_is_a_no_op():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = gen.encode(Image.new("RGB", (32, 32), (200, 80, 60)), "PNG", icc_profile=srgb)
    _, [r] = render_variants(data, (Variant("v", 32, "png"),))
    assert decoded(r).getpixel((5, 5)) == (200, 80, 60)


# ---------------------------------------------------------------- modes
def test_16bit_greyscale_png_is_scaled_not_clipped():
    im = Image.new("I;16", (64, 32))
    im.paste(Image.new("I;16", (32, 32), 32768), (0, 0))
    im.paste(Image.new("I;16", (32, 32), 65535), (32, 0))
    assert im.getpixel((10, 10)) == 32768
    data = gen.encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    _, [r] = render_variants(data, (Variant("v", 64, "png"),))
    out = decoded(r)
    assert out.mode == "L"
    assert abs(out.getpixel((10, 10)) - 128) <= 1
    assert out.getpixel((50, 10)) == 255


def _alpha_source(mode: str) -> bytes:
    rgba = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    rgba.paste((200, 30, 30, 255), (32, 0, 64, 32))
    if mode == "P":
        return gen.encode(rgba.convert("P"), "PNG")  # palette + tRNS
    la = Image.new("LA", (64, 32), (0, 0))
    la.paste((90, 255), (32, 0, 64, 32))
    return gen.encode(la, "PNG")


@pytest.mark.parametrize("mode", ["P", "LA"])
def test_alpha_kept_for_webp_png_and_flattened_on_white_for_jpeg(mode):
    data = _alpha_source(mode)
    assert Image.open(io.BytesIO(data)).mode == mode
    variants = (Variant("j", 64, "jpeg"), Variant("w", 64, "webp"), Variant("p", 64, "png"))
    _, (jpeg, webp, png) = render_variants(data, variants)
    j = decoded(jpeg)
    assert j.mode == "RGB" and close(j.getpixel((8, 16)), (255, 255, 255), 4)
    for r in (webp, png):
        im = decoded(r).convert("RGBA")
        assert im.getpixel((8, 16))[3] == 0
        assert im.getpixel((56, 16))[3] == 255
    opaque = (200, 30, 30) if mode == "P" else (90, 90, 90)
    assert close(decoded(png).convert("RGB").getpixel((56, 16)), opaque, 2)


# ---------------------------------------------------------------- formats
def test_animated_gif_uses_first_frame():
    info, [r] = render_variants(gen.animated_gif(), PNG_ONLY)
    assert info.format == "GIF"
    assert close(decoded(r).convert("RGB").getpixel((10, 10)), gen.RED, 2)


@pytest.mark.parametrize(
    ("fmt", "encoder"),
    [
        ("WEBP", lambda im: gen.encode(im, "WEBP", quality=95)),
        ("TIFF", lambda im: gen.encode(im, "TIFF", compression="tiff_lzw")),
        ("HEIF", lambda im: gen.heic(im)),
        ("PNG", lambda im: gen.encode(im, "PNG")),
    ],
)
def test_other_formats(fmt, encoder):
    info, [r] = render_variants(encoder(gen.corners_image(240, 160)), PNG_ONLY)
    assert (info.format, info.width, info.height) == (fmt, 240, 160)
    im = decoded(r)
    assert im.size == (120, 80)
    assert close(im.getpixel((5, 5)), gen.RED, 14)
    assert close(im.getpixel((114, 74)), gen.YELLOW, 14)


# ---------------------------------------------------------------- metadata
def test_output_carries_no_exif_gps_xmp_or_icc():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = gen.encode(
        gen.photo_image(400, 300), "JPEG", exif=gen.exif_block(1, gps=True), icc_profile=srgb, xmp=xmp, quality=90
    )
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825) and "icc_profile" in source.info and "xmp" in source.info
    variants = (*DEFAULTS, Variant("png", 100, "png"))
    _, renditions = render_variants(data, variants)
    for r in renditions:
        im = Image.open(io.BytesIO(r.data))
        assert not im.getexif(), r.variant
        assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp"} & set(im.info), (r.variant, im.info.keys())
        assert b"Exif\0\0" not in r.data and b"OffloadTestCam" not in r.data and b"adobe:ns:meta" not in r.data


# ---------------------------------------------------------------- rejections
def test_truncated_jpeg_rejected():
    data = gen.truncated(gen.encode(gen.photo_image(400, 300), "JPEG", quality=90))
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        render_variants(data, DEFAULTS)


def test_corrupt_png_rejected():
    data = bytearray(gen.encode(gen.photo_image(64, 64), "PNG"))
    data[200:210] = b"\xff" * 10
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        render_variants(bytes(data), PNG_ONLY)


def test_decompression_bomb_rejected_before_decode():
    bomb = gen.png_bomb(30000, 30000)
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageRejected, match=r"900 MP.*OFFLOAD_MAX_PIXELS.*decompression bomb"):
        render_variants(bomb, DEFAULTS)
    with pytest.raises(ImageRejected, match="OFFLOAD_MAX_PIXELS"):
        probe(bomb, max_pixels=50_000_000, max_bytes=10_000_000)


def test_pixel_cap_from_header_with_clear_message():
    data = gen.png_bomb(8000, 8000)  # 64 MP: under Pillow's own warning threshold, over ours
    with pytest.raises(ImageRejected) as exc:
        render_variants(data, DEFAULTS)
    assert str(exc.value) == ("The file is a 8000x8000 image (64 MP), above the 50 MP limit (OFFLOAD_MAX_PIXELS).")
    assert probe(data, max_pixels=64_000_000, max_bytes=10**7).width == 8000


def test_pillow_bomb_warning_is_a_rejection_not_a_warning():
    data = gen.png_bomb(10000, 10000)  # 100 MP: Pillow warns (DecompressionBombWarning), does not raise
    with pytest.raises(ImageRejected, match="decompression bomb"):
        render_variants(data, DEFAULTS, max_pixels=200_000_000)


def test_too_many_bytes_rejected_for_every_source_type(tmp_path):
    data = gen.encode(gen.photo_image(200, 100), "JPEG")
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    for source in (data, path, str(path), io.BytesIO(data)):
        with pytest.raises(ImageRejected, match=r"above the 0\.0 MB limit \(OFFLOAD_MAX_IMAGE_BYTES\)"):
            render_variants(source, DEFAULTS, max_bytes=len(data) - 1)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (gen.PDF, "a PDF document"),
        (gen.SVG, "an SVG drawing"),
        (gen.EPS, "a PostScript/EPS file"),
        (gen.TEXT, "a text file"),
        (b"BM" + b"\0" * 60, "a BMP image"),
        (b"\0\x01\x02\x03" * 20, "a file of an unknown type"),
    ],
)
def test_non_images_rejected_with_what_they_are(data, what):
    with pytest.raises(ImageRejected, match=f"The file is {what}, not an image Offload can resize"):
        render_variants(data, DEFAULTS)


def test_real_bmp_is_refused_even_though_pillow_reads_it():
    with pytest.raises(ImageRejected, match="BMP"):
        render_variants(gen.encode(gen.corners_image(), "BMP"), DEFAULTS)


def test_empty_file_rejected():
    with pytest.raises(ImageRejected, match="empty"):
        probe(b"", max_pixels=10, max_bytes=10)


# ---------------------------------------------------------------- probe, sources, logging
def test_probe_reads_the_header_only(caplog):
    data = gen.oriented_jpeg(6, 240, 160)
    caplog.set_level(logging.INFO, logger="workers.imaging")
    # A truncated file still probes fine: nothing past the header is decoded.
    info = probe(gen.truncated(data, 0.8), max_pixels=10**6, max_bytes=10**6)
    assert (info.format, info.width, info.height, info.orientation) == ("JPEG", 160, 240, 6)
    full = probe(data, max_pixels=10**6, max_bytes=10**6)
    assert full.sha256 == hashlib.sha256(data).hexdigest() and full.byte_size == len(data)
    assert f"format=JPEG width=160 height=240 orientation=6 byte_size={len(data)} sha256={full.sha256}" in caplog.text


def test_bytes_path_and_stream_sources_agree(tmp_path):
    data = gen.oriented_jpeg(3)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    stream = io.BytesIO(b"junk" + data)
    stream.seek(4)
    results = [render_variants(s, PNG_ONLY) for s in (data, path, stream, bytearray(data))]
    assert len({info for info, _ in results}) == 1
    assert len({r[0].data for _, r in results}) == 1
    assert not stream.closed  # the caller's stream stays open


def test_renditions_have_no_alpha_in_jpeg_and_correct_mime():
    _, renditions = render_variants(_alpha_source("P"), DEFAULTS)
    assert [decoded(r).mode for r in renditions] == ["RGB", "RGBA", "RGB"]
