"""The PDF renderer on honest and hostile documents, all generated here (tests/support/pdfs.py)."""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pytest
from PIL import Image

from services.errors import DocumentRejected
from services.variants import parse_variants
from tests.support.images import photo_jpeg
from tests.support.pdfs import floor_plan_pdf, minimal_pdf
from workers.pdf import render_pages, target_size

PAGE = parse_variants("page:1600:jpeg")


def pixels(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_first_pages_are_rendered_at_the_long_edge_asked() -> None:
    info, renditions = render_pages(minimal_pdf(7), PAGE, max_pages=5)
    assert info.page_count == 7 and [p.number for p in info.pages] == [1, 2, 3, 4, 5]
    assert [r.variant for r in renditions] == ["page-1", "page-2", "page-3", "page-4", "page-5"]
    for rendition in renditions:
        image = pixels(rendition.data)
        assert image.format == "JPEG" and image.size == (1131, 1600) == (rendition.width, rendition.height)
        assert "exif" not in image.info and "icc_profile" not in image.info
    assert (round(info.pages[0].width_pt), round(info.pages[0].height_pt)) == (595, 842)


def test_the_page_is_drawn_not_blank() -> None:
    """The floor plan's filled room (light blue, x 60-280 pt, y 60-380 pt from the bottom) is in the image."""
    _, [rendition] = render_pages(minimal_pdf(1), PAGE)
    image = pixels(rendition.data).convert("RGB")
    scale = 1600 / 842
    r, g, b = image.getpixel((int(150 * scale), int((842 - 200) * scale)))
    assert b > 230 and r < 225, "inside the room: its fill colour (0.8, 0.9, 1)"
    assert image.getpixel((int(570 * scale), int(20 * scale))) == (255, 255, 255), "the margin is white"


def test_every_variant_of_every_page_is_named_page_variant_and_number() -> None:
    variants = parse_variants("page:1600:jpeg,thumb:200:webp")
    _, renditions = render_pages(minimal_pdf(2), variants)
    assert [(r.variant, r.format, max(r.width, r.height)) for r in renditions] == [
        ("page-1", "jpeg", 1600), ("thumb-1", "webp", 200), ("page-2", "jpeg", 1600), ("thumb-2", "webp", 200)]
    assert pixels(renditions[1].data).format == "WEBP"


def test_pages_that_exist_already_are_not_rendered_again() -> None:
    _, renditions = render_pages(minimal_pdf(3), PAGE, skip=frozenset({"page-1", "page-3"}))
    assert [r.variant for r in renditions] == ["page-2"]


def test_a_rotated_page_is_rendered_as_displayed() -> None:
    info, [rendition] = render_pages(minimal_pdf(1, rotate=90), PAGE)
    assert (rendition.width, rendition.height) == (1600, 1131)
    assert info.pages[0].width_pt > info.pages[0].height_pt


def test_a_raster_pdf_made_by_pillow_renders_its_pages() -> None:
    info, renditions = render_pages(floor_plan_pdf(2), PAGE)
    assert info.page_count == 2 and [r.variant for r in renditions] == ["page-1", "page-2"]


def test_a_200_inch_page_is_rendered_at_the_target_size_not_at_its_own() -> None:
    """14,400 x 14,400 pt is 207 MP at 72 dpi; drawn straight into a 1600 px bitmap it is 2.6 MP."""
    info, [rendition] = render_pages(minimal_pdf(1, media_box=(0, 0, 14400, 14400)), PAGE, max_pixels=3_000_000)
    assert (rendition.width, rendition.height) == (1600, 1600)
    assert info.pages[0].width_pt == 14400


def test_a_page_image_above_the_pixel_cap_is_refused_before_any_is_rendered() -> None:
    with pytest.raises(DocumentRejected) as refused:
        render_pages(minimal_pdf(1, media_box=(0, 0, 14400, 14400)), parse_variants("page:8000:png"))
    assert refused.value.code == "DOCUMENT_REJECTED"
    assert "8000x8000" in refused.value.message and "OFFLOAD_MAX_PIXELS" in refused.value.message


def test_a_password_protected_pdf_is_refused_with_what_to_do() -> None:
    locked = minimal_pdf(1, user_password="listing-2026")
    assert len(pdfium.PdfDocument(locked, password="listing-2026")) == 1, "a real encrypted PDF: opens with it"
    with pytest.raises(DocumentRejected) as refused:
        render_pages(locked, PAGE)
    assert "password" in refused.value.message and "without the password" in refused.value.message


def test_an_owner_password_alone_restricts_printing_not_reading_so_it_renders() -> None:
    _, renditions = render_pages(minimal_pdf(1, owner_password="agency-only"), PAGE)
    assert [r.variant for r in renditions] == ["page-1"]


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_truncated_pdf_is_refused_as_incomplete(keep: float) -> None:
    whole = minimal_pdf(3)
    with pytest.raises(DocumentRejected, match="incomplete.*Upload the file again"):
        render_pages(whole[: int(len(whole) * keep)], PAGE)


def test_a_pdf_whose_structure_is_garbage_is_refused_as_damaged() -> None:
    whole = minimal_pdf(3)
    with pytest.raises(DocumentRejected, match="damaged"):
        render_pages(whole[:9] + b"\x00garbage" * 60 + b"\n%%EOF\n", PAGE)


def test_a_page_tree_that_lies_about_its_count_is_refused_as_damaged() -> None:
    with pytest.raises(DocumentRejected, match="damaged: page 2"):
        render_pages(minimal_pdf(1, declared_count=4), PAGE)


def test_ten_thousand_pages_are_refused_without_loading_one(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[int] = []
    real = pdfium.PdfDocument.get_page
    monkeypatch.setattr(pdfium.PdfDocument, "get_page", lambda self, i: loaded.append(i) or real(self, i))
    huge = minimal_pdf(10_000)
    with pytest.raises(DocumentRejected) as refused:
        render_pages(huge, PAGE)
    assert "10000 pages" in refused.value.message and "OFFLOAD_PDF_MAX_PAGE_COUNT" in refused.value.message
    assert loaded == []


def test_with_the_page_count_limit_raised_only_the_first_pages_are_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[int] = []
    real = pdfium.PdfDocument.get_page
    monkeypatch.setattr(pdfium.PdfDocument, "get_page", lambda self, i: loaded.append(i) or real(self, i))
    sized: list[int] = []
    real_size = pdfium.PdfDocument.get_page_size
    monkeypatch.setattr(pdfium.PdfDocument, "get_page_size", lambda self, i: sized.append(i) or real_size(self, i))
    info, renditions = render_pages(minimal_pdf(10_000), PAGE, max_page_count=20_000)
    assert info.page_count == 10_000 and len(renditions) == 5
    assert loaded == [0, 1, 2, 3, 4] and sized == [0, 1, 2, 3, 4]


def test_a_jpeg_named_pdf_is_refused_as_what_it_is() -> None:
    with pytest.raises(DocumentRejected) as refused:
        render_pages(photo_jpeg(400, 300), PAGE)
    assert refused.value.message.startswith("The file is not a PDF: it looks like a JPEG image.")
    assert "right extension" in refused.value.message


@pytest.mark.parametrize(("data", "what"), [(b"", "empty"), (b"hello, this is text\n", "a text file")])
def test_other_non_pdfs_are_refused(data: bytes, what: str) -> None:
    with pytest.raises(DocumentRejected, match=what):
        render_pages(data, PAGE)


def test_a_file_over_the_byte_cap_is_refused_before_parsing() -> None:
    with pytest.raises(DocumentRejected, match="OFFLOAD_MAX_IMAGE_BYTES"):
        render_pages(minimal_pdf(2), PAGE, max_bytes=100)


@pytest.mark.parametrize(("size", "edge", "expected"), [
    ((595, 842), 1600, (1131, 1600)), ((842, 595), 800, (800, 565)), ((14400, 1), 1600, (1600, 1)),
    ((100, 100), 1600, (1600, 1600))])
def test_target_size_keeps_the_aspect_and_the_long_edge(size: tuple[int, int], edge: int,
                                                        expected: tuple[int, int]) -> None:
    assert target_size(*size, edge) == expected
