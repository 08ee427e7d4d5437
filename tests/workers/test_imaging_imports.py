"""What the image modules import: only what decoding needs, so an image-only process stays small.

Each check runs in a fresh interpreter (a subprocess), because this test session has long since imported
rq, marshmallow and pillow-heif. The child prints one JSON object; nothing here measures time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tests.support.imagegen as gen
from workers.imaging.decode import HEIF_BRANDS, NON_HEIF_FORMATS, formats_for, is_heif

ROOT = Path(__file__).resolve().parents[2]
#: Imported by the process registry or the job code, never needed to decode or encode an image.
JOB_ONLY = ("rq", "redis", "simple_salesforce", "marshmallow")


def run_child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter rooted at the repo and return the JSON it printed last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


LOADED = """
    def loaded(*names):
        return sorted(n for n in names if n in sys.modules)
"""


# ---------------------------------------------------------------- what each layer imports
def test_importing_the_image_modules_leaves_job_libraries_out():
    result = run_child(
        "import json, sys\n"
        + textwrap.dedent(LOADED)
        + f"""
import workers.imaging
print(json.dumps({{"job": loaded(*{JOB_ONLY!r}), "heif": loaded("pillow_heif"),
                  "registry_built": "services.processes" in sys.modules}}))
"""
    )
    assert result == {"job": [], "heif": [], "registry_built": False}


def test_the_process_registry_loads_no_image_or_salesforce_code():
    """The web app imports the registry; it must not pay for Pillow, PDFium or simple-salesforce."""
    result = run_child(
        "import json, sys\n"
        + textwrap.dedent(LOADED)
        + """
from services.processes import PROCESSES, Process
print(json.dumps({"names": sorted(PROCESSES), "all": all(isinstance(p, Process) for p in PROCESSES.values()),
                  "heavy": loaded("PIL", "simple_salesforce", "pypdfium2", "workers")}))
"""
    )
    assert result == {"names": ["pdf-preview", "resize-image"], "all": True, "heavy": []}


# ---------------------------------------------------------------- pillow-heif only for HEIF files
DECODE = (
    "import io, json, sys\n"
    + textwrap.dedent(LOADED)
    + """
from PIL import Image
from services.errors import ImageRejected
from workers.imaging import DEFAULT_VARIANTS_SPEC, parse_variants, render_variants

def encoded(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()

def render(data):
    try:
        render_variants(data, parse_variants(DEFAULT_VARIANTS_SPEC))
    except ImageRejected:
        pass
"""
)


def test_decoding_a_jpeg_png_or_refused_file_never_imports_pillow_heif():
    result = run_child(
        DECODE
        + """
for data in (encoded("JPEG"), encoded("PNG"), encoded("WEBP"), b"%PDF-1.4\\n%%EOF\\n"):
    render(data)
# EPS/PDF: proof that a refused file did not make Image.open import every plugin (Image.init()).
print(json.dumps({"heif": loaded("pillow_heif"), "plugins": loaded("PIL.EpsImagePlugin", "PIL.PdfImagePlugin")}))
"""
    )
    assert result == {"heif": [], "plugins": []}


def test_decoding_a_heic_loads_pillow_heif():
    """The positive control for the test above: the child can see pillow-heif being loaded."""
    heic = gen.heic(gen.corners_image(64, 48))
    result = run_child(
        DECODE
        + f"""
render({heic!r})
print(json.dumps({{"heif": loaded("pillow_heif")}}))
"""
    )
    assert result == {"heif": ["pillow_heif"]}


@pytest.mark.parametrize("brand", sorted(HEIF_BRANDS))
def test_heif_brands_sniff_as_heif(brand):
    head = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00"
    assert is_heif(head)
    assert "HEIF" in formats_for(head)


@pytest.mark.parametrize(
    "head",
    [
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",  # JPEG
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # PNG
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00",  # AVIF: pillow-heif's opener refuses it too
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00",  # an MP4 video
        b"\x00\x00\x00\x18moovheic\x00\x00\x00\x00",  # a HEIF brand, but not in an ftyp box
        b"ftypheic",  # too short to hold a box header
        b"",
    ],
)
def test_other_files_do_not_sniff_as_heif(head):
    assert not is_heif(head)
    assert formats_for(head) == NON_HEIF_FORMATS
    assert "HEIF" not in NON_HEIF_FORMATS


def test_brand_list_matches_pillow_heifs_opener():
    """HEIF_BRANDS mirrors pillow-heif's own accept function; this catches a pillow-heif upgrade that changes it."""
    from pillow_heif import as_plugin

    accept = as_plugin._is_supported_heif
    # Its brand tuple, read from the function's constants, so a brand pillow-heif adds is caught too.
    theirs = {c for const in accept.__code__.co_consts if isinstance(const, tuple) for c in const}
    assert theirs == HEIF_BRANDS
    for brand in sorted(HEIF_BRANDS) + [b"avif", b"avis", b"isom", b"mp41"]:
        head = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00"
        assert accept(head) == is_heif(head), brand
