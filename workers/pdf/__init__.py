"""Page images of an uploaded PDF: safe open, pages rendered straight at their target size, bounded work.

Pure rendering: pypdfium2 (Google's PDFium, the PDF engine of Chrome, shipped in the wheel: no system
binary) and Pillow for the encoders, no Redis, Salesforce or Flask. The job that downloads a ContentVersion
calls :func:`render_pages` and uploads what it returns.

Why it is shaped like this (numbers in docs/benchmarks.md, section "PDF pages"):

* **Refuse before parsing what is not a PDF.** The byte size is capped (``OFFLOAD_MAX_IMAGE_BYTES``, as for
  every source file) and the file must carry the ``%PDF-`` header in its first 1024 bytes and an ``%%EOF``
  marker in its last 1024 bytes: ISO 32000-1 sections 7.5.2 and 7.5.5 put the header on the first line and
  ``%%EOF`` on the last; Acrobat accepts either within 1024 bytes of its end of the file (Adobe, PDF Reference
  1.7, Appendix H, notes 13 and 18:
  https://opensource.adobe.com/dc-acrobat-sdk-docs/pdfstandards/pdfreference1.7old.pdf), and so do we. A JPEG
  renamed ``.pdf`` is named as what it is, and a truncated upload (PDFium quietly rebuilds a damaged
  cross-reference table and would render what is left) is refused as incomplete, not previewed half-drawn.
* **Open from the bytes in memory** (``FPDF_LoadMemDocument``): no temporary file. A document with a user
  password is refused (there is no one to type it); one with only an owner password (printing or copying
  restricted, common for brochures) opens and renders, since its pages are readable by anyone.
* **Nothing walks all the pages.** The page count is PDFium's (``FPDF_GetPageCount``, read from the page
  tree's ``/Count``), sizes are read per page without loading it (``FPDF_GetPageSizeByIndexF``), and only the
  first ``OFFLOAD_PDF_MAX_PAGES`` pages are loaded and rendered. A document declaring more than
  ``OFFLOAD_PDF_MAX_PAGE_COUNT`` pages (default 1,000: a brochure or a floor plan has a handful) is refused
  before any page is loaded: such a file is an archive or a generated report, not a listing document, and
  saying so is more use to an admin than five page images of it.
* **Render at the target size, never at full size.** A page's size is in points (1/72 inch) and may be
  anything up to 14,400 x 14,400 (200 x 200 inches, the PDF limit): each page is rasterized directly into a
  bitmap of its rendition's size (``FPDF_RenderPageBitmap`` scales the page into the bitmap), so a
  200-inch poster costs what a 1600 px image costs. The rendition's pixels are checked against
  ``OFFLOAD_MAX_PIXELS`` before the bitmap is allocated. One page is held in memory at a time.
* **Strip everything.** The page images are plain sRGB JPEG/WebP/PNG with no metadata; no JavaScript runs
  (the wheel's PDFium has no V8/XFA) and forms are drawn from their appearance streams only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from services.errors import ConfigError, DocumentRejected
from services.variants import Variant
from workers.imaging.decode import describe_unknown
from workers.imaging.ops import MIME, encode

__all__ = ["DocumentInfo", "PageRendition", "PageSize", "render_pages", "page_variant"]

log = logging.getLogger("workers.pdf")

DEFAULT_MAX_PAGES = 5
DEFAULT_MAX_PAGE_COUNT = 1000
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 100 * 1024 * 1024

HEADER_WINDOW = 1024
"""Acrobat finds the ``%PDF-`` header anywhere in the first 1024 bytes (PDF Reference 1.7, Appendix H, note 13)."""
EOF_WINDOW = 1024
"""... and ``%%EOF`` anywhere in the last 1024 (note 18); a file without it there was cut short."""

_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)

_LOAD_ERRORS = {
    pdfium_c.FPDF_ERR_PASSWORD: "it is protected by a password: save a copy without the password "
                                "(in Acrobat, File > Properties > Security: No Security) and upload that",
    pdfium_c.FPDF_ERR_SECURITY: "it is encrypted with a security handler PDFium does not support: save a copy "
                                "without encryption and upload that",
    pdfium_c.FPDF_ERR_FORMAT: "it is damaged (its structure cannot be read): open it in a PDF viewer, save or "
                              "export it again, and upload the new file",
}

_RENDER_FLAGS = pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_REVERSE_BYTE_ORDER
"""Draw annotations (form fields' appearances, stamps) as a viewer does; RGB byte order for Pillow."""


@dataclass(frozen=True)
class PageSize:
    """One page's size in points (1/72 inch) as displayed (after its ``/Rotate``)."""

    number: int
    width_pt: float
    height_pt: float


@dataclass(frozen=True)
class DocumentInfo:
    """What the uploaded PDF is: its page count and the size of each page rendered."""

    page_count: int
    pages: tuple[PageSize, ...]
    byte_size: int


@dataclass(frozen=True)
class PageRendition:
    """One encoded page image. ``variant`` is the rendition's name (``page-2``): :func:`page_variant`."""

    variant: str
    page: int
    data: bytes
    width: int
    height: int
    format: str
    extension: str


def page_variant(variant: Variant, page: int) -> str:
    """The ``Offload_Variant__c`` of page ``page`` (1-based) in ``variant``: ``page-1``, ``page-2``, ..."""
    return f"{variant.name}-{page}"


def target_size(width_pt: float, height_pt: float, long_edge: int) -> tuple[int, int]:
    """The bitmap for a page: its long side ``long_edge`` px, the other in proportion (at least 1 px).

    Vector pages are drawn at any size, so small pages are enlarged too: a page image is as wide as asked.
    """
    scale = long_edge / max(width_pt, height_pt)
    return max(1, round(width_pt * scale)), max(1, round(height_pt * scale))


def check_document(data: bytes, max_bytes: int) -> None:
    """Refuse, before PDFium parses anything, what is too big, not a PDF, or cut short."""
    if len(data) > max_bytes:
        raise DocumentRejected(f"The file is {len(data)} bytes, above the {max_bytes} byte limit "
                               "(OFFLOAD_MAX_IMAGE_BYTES).")
    if not data:
        raise DocumentRejected("The file is empty (0 bytes), so there is no document to preview.")
    head = data[:HEADER_WINDOW]
    if b"%PDF-" not in head:
        what = next((name for magic, name in _IMAGE_MAGIC if head.startswith(magic)), None)
        what = what or ("a WebP image" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else describe_unknown(head))
        hint = " Give it the right extension and upload it again: images get photo renditions." \
            if what.endswith("image") else ""
        raise DocumentRejected(f"The file is not a PDF: it looks like {what}.{hint}")
    if b"%%EOF" not in data[-EOF_WINDOW:]:
        raise DocumentRejected("The PDF is incomplete: it does not end with the %%EOF marker, so the upload was "
                               "probably cut short. Upload the file again.")


def render_pages(
    data: bytes,
    variants: Sequence[Variant],
    *,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_page_count: int = DEFAULT_MAX_PAGE_COUNT,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip: frozenset[str] = frozenset(),
) -> tuple[DocumentInfo, list[PageRendition]]:
    """Render the first ``max_pages`` pages of the PDF in ``data`` at every variant, page by page.

    ``skip`` names renditions (``page-1``) that already exist: they are not rendered. Raises
    DocumentRejected (a PermanentJobError) for anything that is not a PDF we can preview.
    """
    if not variants:
        raise ConfigError("OFFLOAD_PDF_VARIANTS is empty: at least one rendition is needed.")
    check_document(data, max_bytes)
    document = _open(data)
    try:
        page_count = len(document)
        if page_count < 1:
            raise DocumentRejected("The PDF has no pages, so there is nothing to preview.")
        if page_count > max_page_count:
            raise DocumentRejected(
                f"The PDF has {page_count} pages; Offload previews documents of at most {max_page_count} pages "
                "(OFFLOAD_PDF_MAX_PAGE_COUNT). Upload the pages that matter (a brochure, a floor plan) as "
                "their own PDF.")
        sizes = tuple(_page_size(document, n) for n in range(1, min(page_count, max_pages) + 1))
        for size in sizes:  # every page's pixels checked before the first is rendered: all or nothing
            for variant in variants:
                width, height = target_size(size.width_pt, size.height_pt, variant.long_edge)
                if width * height > max_pixels:
                    raise DocumentRejected(
                        f"Page {size.number} would be {width}x{height} pixels at {variant.name!r} "
                        f"({variant.long_edge} px), above the {max_pixels} pixel limit (OFFLOAD_MAX_PIXELS). "
                        "Lower the long edge in OFFLOAD_PDF_VARIANTS or raise OFFLOAD_MAX_PIXELS.")
        renditions: list[PageRendition] = []
        for size in sizes:
            wanted = [v for v in variants if page_variant(v, size.number) not in skip]
            if wanted:
                renditions.extend(_render_page(document, size, wanted))
        info = DocumentInfo(page_count, sizes, len(data))
        log.info("pdf source pages=%d rendered=%d byte_size=%d", page_count, len(renditions), len(data))
        return info, renditions
    finally:
        document.close()


def _open(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = _LOAD_ERRORS.get(exc.err_code or 0, _LOAD_ERRORS[pdfium_c.FPDF_ERR_FORMAT])
        raise DocumentRejected(f"The PDF cannot be opened: {reason}.") from None


def _page_size(document: pdfium.PdfDocument, number: int) -> PageSize:
    """A page's displayed size without loading the page; a page with no usable size is damaged."""
    try:
        width, height = document.get_page_size(number - 1)
    except pdfium.PdfiumError:
        raise DocumentRejected(f"The PDF is damaged: page {number} cannot be read. Open it in a PDF viewer, "
                               "save or export it again, and upload the new file.") from None
    if not (width > 0 and height > 0):
        raise DocumentRejected(f"The PDF is damaged: page {number} has no size ({width} x {height} pt).")
    return PageSize(number, width, height)


def _render_page(document: pdfium.PdfDocument, size: PageSize, variants: Sequence[Variant]) -> list[PageRendition]:
    try:
        page = document.get_page(size.number - 1)
    except pdfium.PdfiumError:
        raise DocumentRejected(f"The PDF is damaged: page {size.number} cannot be loaded. Open it in a PDF "
                               "viewer, save or export it again, and upload the new file.") from None
    try:
        out = []
        for variant in variants:
            width, height = target_size(size.width_pt, size.height_pt, variant.long_edge)
            image = _rasterize(page, width, height)
            mime, extension = MIME[variant.format]
            data = encode(image, variant.format)
            image.close()
            out.append(PageRendition(page_variant(variant, size.number), size.number, data, width, height,
                                     variant.format, extension))
            log.debug("pdf page=%d variant=%s width=%d height=%d bytes=%d",
                      size.number, variant.name, width, height, len(data))
        return out
    finally:
        page.close()


def _rasterize(page: pdfium.PdfPage, width: int, height: int) -> Image.Image:
    """Draw the page scaled into a ``width`` x ``height`` RGB bitmap on white (PDFium scales the page into it)."""
    bitmap = pdfium.PdfBitmap.new_native(width, height, pdfium_c.FPDFBitmap_BGR, rev_byteorder=True)
    try:
        bitmap.fill_rect((255, 255, 255, 255), 0, 0, width, height)
        pdfium_c.FPDF_RenderPageBitmap(bitmap.raw, page.raw, 0, 0, width, height, 0, _RENDER_FLAGS)
        return bitmap.to_pil()  # an RGB copy: the bitmap is freed right after
    finally:
        bitmap.close()
