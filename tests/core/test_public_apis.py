"""Product code uses libraries through their public APIs: no private attributes of Pillow, rq or redis-py.

A reach into a library's internals turns its next upgrade into a hazard. The few things with no public
API live in one adapter module each (``rqcompat.py``, ``pillowcompat.py``), with a test that names
the version that broke.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ("rqcompat.py", "pillowcompat.py")
PRODUCT = sorted(p for d in ("services", "workers") for p in (ROOT / d).rglob("*.py") if p.name not in ADAPTERS)

FORBIDDEN = {
    "Pillow's private image size": r"\._size\b",
    "Pillow's tile list": r"\.tile\b",
    "Pillow's decoder configuration": r"\bdecoderconfig\b",
    "Pillow's private classes": r"ImageFile\._",
    "rq's shutdown date": r"_shutdown_requested_date",
    "rq's signal-handler hook": r"_install_signal_handlers",
    "rq's scheduler process": r"scheduler\._process",
    "hand-packed RESP": r"send_packed_command|pack_command",
    "a connection pool of our own": r"connection_class\(|connection_kwargs",
}


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_private_library_attribute_in_product_code(what: str) -> None:
    pattern = re.compile(FORBIDDEN[what])
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in PRODUCT
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"{what} used in {hits}: use the public API, or an adapter module with a version test"
