"""workers/heap.py: a tuned process keeps a freed photo-sized buffer mapped for the next job."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import resource, sys
    from workers.heap import keep_heap_between_jobs
    if sys.argv[1] == "tuned":
        assert keep_heap_between_jobs()
    def faults_of_one_job(size):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = bytearray(size)  # zero-filled: every page is touched, like a decoded image
        del buffer
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    faults_of_one_job(24 << 20)  # the first job maps its pages whatever the settings
    print(faults_of_one_job(24 << 20))
""")
PAGES = (24 << 20) // 4096


def _second_job_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt; elsewhere it is a no-op")
def test_a_tuned_process_reuses_a_freed_24_mb_buffer_instead_of_faulting_it_in_again() -> None:
    assert _second_job_faults("tuned") < PAGES // 100
    # The default settings hand the memory back and fault it in again, which is what the tuning avoids.
    assert _second_job_faults("default") > PAGES // 2
