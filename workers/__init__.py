"""Offload's workers: one module per external process, plus the RQ worker entry point.

``python -m workers`` starts a worker (see ``workers/__main__.py``). The
registry below is what the receiver, the OpenAPI document and the docs are
generated from.
"""

from __future__ import annotations

from workers.registry import Process, load_processes

PROCESS_MODULES: tuple[str, ...] = ("workers.resize_image",)
"""Every process module; each defines ``PROCESS``. Add a module here to add a process."""

PROCESSES: dict[str, Process] = load_processes(PROCESS_MODULES)

__all__ = ["PROCESSES", "PROCESS_MODULES", "Process"]
