"""Offload's job runtime: the RQ worker entry point (``python -m workers``), the runner every job goes
through, and one job module per process (``resize_job``), with the image code in :mod:`workers.imaging`.

What the processes are is declared in :mod:`services.processes`; this package only runs them.
"""
