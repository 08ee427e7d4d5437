"""What this dyno can run at once: its CPUs and its memory limit, read the way Heroku's Python buildpack does.

Heroku's Eco, Basic and Standard dynos share a host and report its CPUs (8) to ``nproc``, while their memory
is capped (512 MB for Standard-1X); Performance dynos get dedicated cores. So the CPU count alone would start
eight work processes in 512 MB. The buildpack's ``WEB_CONCURRENCY`` default is the lower of a CPU figure and
the dyno's memory limit (read from its cgroup) divided by a per-process budget
(https://github.com/heroku/heroku-buildpack-python/pull/1547, dyno sizes:
https://devcenter.heroku.com/articles/dyno-types); :func:`default_worker_concurrency` does the same for work
processes, with one process per core (image and PDF work is CPU-bound) and a larger budget per process.
"""

from __future__ import annotations

import os
from pathlib import Path

WORK_PROCESS_MEMORY_MB = 512
"""Memory one work process may need at its peak: a 50-megapixel image (``OFFLOAD_MAX_PIXELS``) at Pillow's
4 bytes a pixel is 200 MB, plus the interpreter, Pillow and the renditions in flight."""

CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
"""cgroup v2, then v1: where Linux says how much memory this container may use."""


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow; else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def memory_limit_bytes() -> int | None:
    """The container's memory limit, or the machine's memory when there is none; None when unknown."""
    physical = None
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    for path in CGROUP_MEMORY_FILES:
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            limit = int(raw)
            # cgroup v1 reports "no limit" as a huge number (about 2**63).
            return min(limit, physical) if physical else limit
    return physical


def default_worker_concurrency() -> int:
    """One work process per CPU, as many as the memory limit holds at :data:`WORK_PROCESS_MEMORY_MB` each."""
    memory = memory_limit_bytes()
    by_memory = max(1, memory // (WORK_PROCESS_MEMORY_MB * 1024 * 1024)) if memory else cpu_count()
    return max(1, min(cpu_count(), by_memory))
