"""Offload's workers: one module per external process, plus the RQ worker entry point.

``python -m workers`` starts a worker (see ``workers/__main__.py``). The
registry below is what the receiver, the OpenAPI document and the docs are
generated from.

The registry is built on first access (PEP 562 module ``__getattr__``), not at
import: importing any submodule runs this file first, and building the registry
imports every process module and so marshmallow. The image modules
(``workers.imaging*``) need none of that, and a process that only resizes
images (a benchmark, a one-off script, a future image-only worker) should not
pay its import time and memory. ``from workers import PROCESSES, Process``
works as before: ``from ... import`` goes through ``__getattr__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time both names come from __getattr__
    from workers.registry import Process

    PROCESSES: dict[str, Process]

PROCESS_MODULES: tuple[str, ...] = ("workers.resize_image",)
"""Every process module; each defines ``PROCESS``. Add a module here to add a process."""

__all__ = ["PROCESSES", "PROCESS_MODULES", "Process"]


def __getattr__(name: str) -> Any:
    """Build ``PROCESSES`` (and import ``Process``) on first use, then cache it in the module globals.

    Once cached, ordinary attribute lookup finds the name and this is never called again for it. Any
    other name raises AttributeError, which is what lets ``from workers import runner`` fall back to
    importing the submodule (the import system only does that after ``getattr`` fails).
    """
    if name == "Process":
        from workers.registry import Process

        globals()["Process"] = Process
        return Process
    if name == "PROCESSES":
        from workers.registry import load_processes

        # No lock: two threads racing here would each build a dict of the same Process objects (the
        # process modules are imported once, under the import lock), and the last assignment wins.
        processes = load_processes(PROCESS_MODULES)
        globals()["PROCESSES"] = processes
        return processes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Include the lazy names, so ``dir(workers)`` lists them before their first use too."""
    return sorted({*globals(), *__all__})
