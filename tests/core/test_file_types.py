"""One list of file types: the processes' declarations, the workers' decoders, the Apex upload trigger and the
encoders agree."""

from __future__ import annotations

import re
from pathlib import Path

from services.imagetypes import IMAGE_EXTENSIONS, IMAGE_FILE_TYPES
from services.processes import PROCESSES
from services.processes.base import routes
from services.variants import RENDITION_FORMATS
from workers.imaging.decode import ALLOWED_FORMATS
from workers.imaging.ops import MIME

APEX_HANDLER = (Path(__file__).resolve().parents[2] / "apex" / "force-app" / "main" / "default" / "classes"
                / "ContentVersionTriggerHandler.cls")


def apex_routes() -> dict[str, str]:
    """The entries of ``PROCESS_BY_FILE_TYPE = new Map<String, String>{...}`` in the Apex trigger handler."""
    source = APEX_HANDLER.read_text()
    found = re.search(r"PROCESS_BY_FILE_TYPE\s*=\s*new\s+Map<String,\s*String>\s*\{(?P<body>[^}]*)\}", source)
    assert found, f"PROCESS_BY_FILE_TYPE not found in {APEX_HANDLER.name}"
    entries = re.findall(r"'([^']*)'\s*=>\s*'([^']*)'", found["body"])
    assert len(entries) == found["body"].count("=>"), "every entry is a 'type' => 'process' pair of literals"
    return dict(entries)


def test_the_apex_trigger_routes_exactly_the_types_each_process_takes() -> None:
    assert apex_routes() == routes(PROCESSES)


def test_every_routed_process_exists() -> None:
    assert set(apex_routes().values()) <= set(PROCESSES)


def test_resize_image_takes_the_image_types() -> None:
    assert PROCESSES["resize-image"].file_types == IMAGE_EXTENSIONS


def test_the_decoder_opens_exactly_the_declared_formats() -> None:
    assert set(ALLOWED_FORMATS) == set(IMAGE_FILE_TYPES)


def test_every_rendition_format_has_an_encoder() -> None:
    assert set(RENDITION_FORMATS) == set(MIME)
