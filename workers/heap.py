"""Keep a long-lived work process's heap from one photo to the next (glibc ``mallopt``).

A photo job allocates tens of MB (the reduced-scale decode, the resized images, encoder buffers) and
frees them at the end. glibc's malloc then often hands that memory back to the kernel: blocks above its
dynamic mmap threshold are unmapped on ``free``, and a heap top above the trim threshold is trimmed.
The next job faults every page in again. Measured on a 24 MP photo in the supervised work process
(``bench/rq_overhead.py``'s setup, ``getrusage`` around each job): every other job took ~8,400 minor
page faults (~33 MB) and ran ~25-30 % slower than its neighbours (page faults are expensive in a VM);
with the two settings below, 0-25 faults a job. A loop calling ``render_variants`` in a fresh process
does not show it, because glibc's dynamic thresholds settle there; in a worker, rq's own allocations
between jobs keep resetting them.

* ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's largest, ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit): blocks
  below it come from the heap and are reused; larger ones (a 50 MP decode) are still unmapped on free.
* ``M_TRIM_THRESHOLD`` = 128 MiB: free memory at the heap's top is kept up to that, so the work
  process's resident size stays near its largest job's peak between jobs. Retiring the work process
  every ``OFFLOAD_WORKER_MAX_JOBS`` jobs (``workers/supervisor.py``) returns it.

Only for processes that run many jobs: a fork per job (``--fork-per-job``) starts with fresh pages
anyway. On a libc without ``mallopt`` (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from services.logs import event

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_heap_between_jobs"]

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024


def keep_heap_between_jobs() -> bool:
    """Apply the two ``mallopt`` settings to this process (and the processes it forks later).

    Returns True when glibc took both; False (and changes nothing) where ``mallopt`` is missing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        event(logger, "malloc tuning refused; photo jobs may page-fault their buffers in again", logging.WARNING)
    return ok
