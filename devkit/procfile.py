"""Run the suite exactly as the Procfile says.

The two Procfile lines are the contract for running Offload: Heroku, ``honcho
start``, ``offload dev``, the demo and the integration tests all start
``web`` and ``worker`` with them, so none of them can drift from production.

An installed package has no Procfile (it lives at the top of the repository, where
Heroku reads it), so the dev kit carries the same two lines in :data:`PROCESS_TYPES`,
and ``tests/devkit/test_procfile.py`` keeps them equal to the file. Both commands
name modules, not files, so they start the same way from any folder.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from honcho.environ import parse_procfile

PROCESS_TYPES: dict[str, str] = {
    "web": "gunicorn --config python:services.receiver.gunicorn_conf services.receiver.wsgi:app",
    "worker": "python -m workers",
}
"""The Procfile's process types, as Heroku reads them from the repository's ``Procfile``."""

APPLINK_PROCESS_TYPES: dict[str, str] = {
    "web": "heroku-applink-service-mesh " + PROCESS_TYPES["web"],
    "worker": PROCESS_TYPES["worker"],
}
"""``Procfile.applink``: the same processes with the AppLink service mesh in front of ``web``, as its buildpack
says ("web: heroku-applink-service-mesh <your app startup command>",
https://github.com/heroku/heroku-buildpack-heroku-applink-service-mesh). ``APP_PORT`` is a config var."""


def procfile_commands(path: Path | None = None) -> dict[str, str]:
    """``{"web": "gunicorn ...", "worker": "python -m workers"}``: a Procfile's lines, or the dev kit's copy."""
    if path is None:
        return dict(PROCESS_TYPES)
    return dict(parse_procfile(path.read_text()).processes)


def process_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child: ours plus overrides, with this interpreter's bin first on PATH.

    Putting ``sys.executable``'s directory first makes ``gunicorn`` and
    ``python`` in the Procfile resolve to the same virtualenv we run in.
    """
    env = {**os.environ, **overrides}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def spawn(
    name: str, overrides: Mapping[str, str], args: Sequence[str] = (), *, commands: Mapping[str, str] | None = None,
    **popen_kwargs: object,
) -> subprocess.Popen[bytes]:
    """Start one Procfile process (through ``sh -c`` so ``$PORT`` expands, as on Heroku).

    ``args`` are appended to the Procfile command, as an operator would edit the line (for example
    ``--fork-per-job`` for the worker). ``commands``: another Procfile's lines (:data:`APPLINK_PROCESS_TYPES`).
    """
    command = " ".join([(commands or procfile_commands())[name], *map(shlex.quote, args)])
    return subprocess.Popen(  # the command is one of our own Procfile lines
        ["/bin/sh", "-c", f"exec {command}"],
        env=process_env(overrides),
        start_new_session=True,
        **popen_kwargs,  # type: ignore[arg-type]
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 25.0) -> int:
    """SIGTERM (what Heroku sends), then SIGKILL if it has not exited in ``timeout`` seconds."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode
