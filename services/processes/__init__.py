"""Every process Offload runs, by name: the registry the receiver, OpenAPI, dashboard and docs read.

A process is declared in one module of this package (a :class:`~services.processes.base.Process`
named ``PROCESS``) and listed once below. Declarations hold no Pillow or simple-salesforce: the
web app imports this package, and each handler is named by dotted path and imported only by a
worker (:meth:`Process.load_handler`).
"""

from __future__ import annotations

from services.processes import pdf_preview, resize_image
from services.processes.base import Process, registry_of

PROCESSES: dict[str, Process] = registry_of(resize_image.PROCESS, pdf_preview.PROCESS)
"""Process name -> declaration. Add a process: one module here plus its name in this call."""

__all__ = ["PROCESSES", "Process"]
