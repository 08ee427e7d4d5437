"""The image types Offload resizes, in one list (no imports: the image-only code path reads it too)."""

from __future__ import annotations

IMAGE_FILE_TYPES: dict[str, tuple[str, ...]] = {
    "JPEG": ("jpg", "jpeg"),
    "PNG": ("png",),
    "GIF": ("gif",),
    "WEBP": ("webp",),
    "TIFF": ("tif", "tiff"),
    "HEIF": ("heic", "heif"),
}
"""The images Offload resizes: Pillow's format id -> the file extensions (lower case) that name it.

The one list: the worker decodes only these formats, a ``recordId`` job picks files by these
extensions, ``resize-image`` declares them as its ``file_types``, and the Apex trigger's
``ContentVersionTriggerHandler.PROCESS_BY_FILE_TYPE`` (which Salesforce compares with ``FileExtension`` and
``FileType``) routes them to it, kept equal by ``tests/core/test_file_types.py``."""

IMAGE_EXTENSIONS: tuple[str, ...] = tuple(ext for exts in IMAGE_FILE_TYPES.values() for ext in exts)
