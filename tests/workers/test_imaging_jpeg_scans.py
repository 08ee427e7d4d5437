"""A JPEG's scans are counted before it is decoded, and a job timeout during a decode stays a timeout.

The attack (Offload issue 15, item 10): a 380 kB progressive JPEG of 36 MP whose one small scan is
repeated 3,000 times held a worker for a minute, because libjpeg makes a pass over the whole image per
scan. :func:`workers.imaging.decode.count_jpeg_scans` refuses it before Pillow decodes a pixel. And rq's
``JobTimeoutException``, raised into whatever Pillow step runs when the alarm is handled, must not be
mistaken for a damaged file (a permanent IMAGE_REJECTED).
"""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from services.errors import ImageRejected
from services.variants import parse_variants
from tests.support.hostile_jpeg import scan_flood_jpeg, scan_segments
from workers.imaging import probe, render_variants
from workers.imaging.decode import DEFAULT_MAX_JPEG_SCANS, count_jpeg_scans

VARIANTS = parse_variants("large:1600:jpeg,thumb:200:jpeg")
LIMITS = {"max_pixels": 50_000_000, "max_bytes": 100 * 1024 * 1024}


def noisy_jpeg(**params: object) -> bytes:
    """Random pixels: the entropy-coded data is full of stuffed 0xFF00 bytes (and RSTn when asked)."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", (640, 480), rng.randbytes(640 * 480 * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **{"quality": 95, **params})
    return buffer.getvalue()


def test_the_scan_flood_from_the_issue_is_refused_before_decoding() -> None:
    data = scan_flood_jpeg(6000, 6000, 3000)  # 36 MP, ~380 kB: the file the issue reports
    for refuse in (lambda: probe(data, **LIMITS), lambda: render_variants(data, VARIANTS, **LIMITS)):
        with pytest.raises(ImageRejected) as caught:
            refuse()
        message = caught.value.message
        assert f"more than {DEFAULT_MAX_JPEG_SCANS} scans" in message
        assert "OFFLOAD_MAX_JPEG_SCANS" in message
        assert f"counted {DEFAULT_MAX_JPEG_SCANS + 1}" in message  # the walk stops at the first scan too many
        assert caught.value.code == "IMAGE_REJECTED"


def test_the_limit_is_what_refused_it_a_higher_one_lets_the_same_file_render() -> None:
    data = scan_flood_jpeg(64, 48, 150)  # tiny, so each extra scan costs nothing
    with pytest.raises(ImageRejected, match="scans"):
        render_variants(data, VARIANTS, **LIMITS)
    info, renditions = render_variants(data, VARIANTS, **LIMITS, max_jpeg_scans=1000)
    assert (info.width, info.height) == (64, 48)
    assert [r.variant.name for r in renditions] == ["large", "thumb"]


@pytest.mark.parametrize("params, scans", [
    ({}, 1),
    ({"optimize": True}, 1),
    # libjpeg's default progression (jpeg_simple_progression, jcparam.c) for YCbCr: 10 scans.
    ({"progressive": True}, 10),
    ({"progressive": True, "optimize": True}, 10),
    ({"progressive": True, "restart_marker_blocks": 4}, 10),
])
def test_normal_jpegs_count_their_real_scans_and_pass(params: dict, scans: int) -> None:
    data = noisy_jpeg(**params)
    assert data.count(b"\xff\x00") > 100, "the test image should exercise 0xFF00 stuffing"
    assert count_jpeg_scans(io.BytesIO(data), DEFAULT_MAX_JPEG_SCANS) == scans == len(scan_segments(data))
    info, renditions = render_variants(data, VARIANTS, **LIMITS)
    assert (info.format, info.width, info.height) == ("JPEG", 640, 480)
    assert len(renditions) == 2


def test_a_grayscale_progressive_jpeg_and_a_file_path_are_counted(tmp_path) -> None:
    image = Image.frombytes("L", (320, 240), random.Random(3).randbytes(320 * 240))
    path = tmp_path / "gray.jpg"
    image.save(path, "JPEG", progressive=True)
    with open(path, "rb") as fp:
        fp.seek(5)
        assert count_jpeg_scans(fp, DEFAULT_MAX_JPEG_SCANS) == 6  # libjpeg's grayscale progression
        assert fp.tell() == 5, "the position must be restored"
    assert probe(str(path), **LIMITS).format == "JPEG"


def test_a_job_timeout_during_a_slow_decode_is_a_timeout_not_a_damaged_file() -> None:
    """rq's alarm fires while libjpeg works through the scans; it is delivered when the C call returns,
    inside Pillow's load, which ``pillow_errors`` used to turn into IMAGE_REJECTED ("damaged")."""
    data = scan_flood_jpeg(2000, 2000, 700)  # seconds of decoding, with the scan limit raised below
    with pytest.raises(JobTimeoutException), UnixSignalDeathPenalty(1, JobTimeoutException, job_id="test"):
        render_variants(data, VARIANTS, **LIMITS, max_jpeg_scans=10_000)
