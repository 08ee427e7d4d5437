"""The README's first command works: `offload demo` exits 0 after the renditions and page images come back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_offload_demo_runs_end_to_end(redis_url: str, redis_conn) -> None:
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("REQUESTS_CA_BUNDLE", None)
    completed = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--megapixels", "6", "--timeout", "90"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Ack true" in completed.stdout and "HTTP 202" in completed.stdout
    assert completed.stdout.count(".webp") == 2 and "Succeeded" in completed.stdout
    assert "harbour-view-floor-plan-page-1.jpg" in completed.stdout
    assert "harbour-view-floor-plan-page-2.jpg" in completed.stdout and "of a 2-page PDF" in completed.stdout
