"""One list of image types: the process declaration, the worker's decoder, the Apex trigger and the encoders agree."""

from __future__ import annotations

import re
from pathlib import Path

from services.imagetypes import IMAGE_EXTENSIONS, IMAGE_FILE_TYPES
from services.variants import RENDITION_FORMATS
from workers.imaging.decode import ALLOWED_FORMATS
from workers.imaging.ops import MIME

APEX_HANDLER = (Path(__file__).resolve().parents[2] / "apex" / "force-app" / "main" / "default" / "classes"
                / "ContentVersionTriggerHandler.cls")


def apex_image_types() -> set[str]:
    """The string literals of ``IMAGE_TYPES = new Set<String>{...}`` in the Apex trigger handler."""
    source = APEX_HANDLER.read_text()
    found = re.search(r"IMAGE_TYPES\s*=\s*new\s+Set<String>\s*\{(?P<body>[^}]*)\}", source)
    assert found, f"IMAGE_TYPES not found in {APEX_HANDLER.name}"
    return set(re.findall(r"'([^']*)'", found["body"]))


def test_the_apex_trigger_sends_exactly_the_types_the_worker_resizes() -> None:
    assert apex_image_types() == set(IMAGE_EXTENSIONS)


def test_the_decoder_opens_exactly_the_declared_formats() -> None:
    assert set(ALLOWED_FORMATS) == set(IMAGE_FILE_TYPES)


def test_every_rendition_format_has_an_encoder() -> None:
    assert set(RENDITION_FORMATS) == set(MIME)
