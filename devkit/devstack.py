"""The whole suite on one machine: Redis, the org emulator, and the Procfile's web and workers.

Used by ``offload dev``, ``offload demo``, the integration tests and the
end-to-end benchmark, so all of them run Offload the way Heroku does: the
``web`` and ``worker`` lines of the Procfile, as separate processes, talking
over real sockets to a real Redis and to an org that speaks Salesforce's
wire formats.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devkit.embedded_redis import EmbeddedRedis, free_port
from devkit.procfile import APPLINK_PROCESS_TYPES, spawn, stop

COMPLETION_EVENT = "Offload_Job_Event__e"

DEV_OUTBOUND_TOKEN = secrets.token_urlsafe(24)
"""This process's ``OFFLOAD_OUTBOUND_TOKENS``: the emulated org's Outbound Message URL ends with it."""


def outbound_endpoint(receiver_url: str, process: str = "resize-image") -> str:
    """An Outbound Message Endpoint URL as apex/README.md has the admin write it (with ``?token=``)."""
    return f"{receiver_url}/outbound/{process}?token={DEV_OUTBOUND_TOKEN}"


def offload_org_config(**overrides: object) -> object:
    """An emulated org as it looks after ``apex/`` is deployed: the rendition marker fields on
    ContentVersion and the ``Offload_Job_Event__e`` Platform Event exist."""
    from devkit.org import OrgConfig

    return OrgConfig(
        schema={"ContentVersion": ("Offload_Rendition_Of__c", "Offload_Variant__c", "Description")},
        platform_events=frozenset({COMPLETION_EVENT}),
        **overrides,  # type: ignore[arg-type]
    )


def org_env(org: object) -> dict[str, str]:
    """Variables that point Offload's workers and receiver at an emulated org."""
    return {
        "SALESFORCE_LOGIN_URL": org.base_url,  # type: ignore[attr-defined]
        "SALESFORCE_CLIENT_ID": org.client_id,  # type: ignore[attr-defined]
        "SALESFORCE_CLIENT_SECRET": org.client_secret,  # type: ignore[attr-defined]
        "OFFLOAD_SALESFORCE_CA_BUNDLE": org.ca_bundle,  # type: ignore[attr-defined]
        "OFFLOAD_ORG_IDS": org.org_id,  # type: ignore[attr-defined]
        "OFFLOAD_OUTBOUND_TOKENS": DEV_OUTBOUND_TOKEN,
        "OFFLOAD_COMPLETION_EVENT": COMPLETION_EVENT,
    }


@contextlib.contextmanager
def start_dev_org(receiver_url: str, *, applink: bool = False) -> Iterator[dict[str, str]]:
    """An emulated org for ``offload dev``; yields the environment for web and workers.

    ``applink``: also the AppLink API stand-in, the add-on's variables and ``APP_PORT`` (:func:`applink_env`).
    """
    from devkit.org import EmulatedOrg

    with EmulatedOrg(offload_org_config(), state_dir=Path(tempfile.mkdtemp(prefix="offload-org-"))) as org:
        sender = _define_outbound(org, receiver_url)
        stack_cb = contextlib.ExitStack()
        stack_cb.callback(sender.stop)  # type: ignore[attr-defined]
        print(f"Org emulator: {org.base_url}  (CA bundle: {org.ca_bundle}, org id {org.org_id})")
        with stack_cb:
            env = org_env(org)
            if applink:
                env.update(applink_env(org, stack_cb, Path(tempfile.mkdtemp(prefix="offload-applink-")))[1])
                print(f"AppLink: POST {receiver_url}/applink/<process> with "
                      f"'Authorization: Bearer {org.issue_token()}' (a session of {org.username})")
            yield env


def applink_env(org: object, exit_stack: contextlib.ExitStack, bin_dir: Path) -> tuple[object, dict[str, str]]:
    """Start the AppLink API stand-in for ``org`` (stopped by ``exit_stack``); return it and the variables
    ``Procfile.applink`` runs with.

    The add-on's ``HEROKU_APPLINK_API_URL``/``HEROKU_APPLINK_TOKEN``, a free ``APP_PORT``, the Authorized User,
    and ``heroku-applink-service-mesh`` on ``PATH``: a shim in ``bin_dir`` that runs :mod:`devkit.applink.mesh`,
    as the buildpack puts its binary on the dyno's ``PATH``.
    """
    import sys

    from devkit.applink.api import AUTHORIZATION_NAME, AppLinkApi

    api = exit_stack.enter_context(AppLinkApi(org))
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "heroku-applink-service-mesh"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m devkit.applink.mesh "$@"\n')
    shim.chmod(0o755)
    return api, {**api.env(), "APP_PORT": str(free_port()), "OFFLOAD_APPLINK_AUTHORIZATION": AUTHORIZATION_NAME,
                 "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _define_outbound(org: object, receiver_url: str) -> object:
    """An Outbound Message on Account that calls ``/outbound/resize-image``, as apex/ sets up."""
    from devkit.org.outbound_admin import define, ensure_sender

    state = org.state  # type: ignore[attr-defined]
    define(state, name="Offload_Resize_Photos", sobject="Account", fields=("Id", "Name"),
           endpoint_url=outbound_endpoint(receiver_url))
    return ensure_sender(state)


@dataclass
class LocalStack:
    """Redis + org emulator + gunicorn (Procfile ``web``) + N workers (Procfile ``worker``).

    Args:
        redis_url: Use this Redis; None starts an embedded one.
        workers: Worker processes to start.
        env: Extra environment for web and workers.
        worker_args: Appended to the Procfile ``worker`` command (e.g. ``("--fork-per-job",)``).
        applink: Run ``Procfile.applink``: the AppLink service-mesh stand-in on ``port`` in front of gunicorn
            on ``APP_PORT``, with the AppLink API stand-in (``self.applink_api``) for it and the workers.
    """

    redis_url: str | None = None
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    worker_args: tuple[str, ...] = ()
    applink: bool = False
    applink_api: object | None = None
    web_concurrency: int = 2
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="offload-stack-")))
    callout_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    org: object | None = None
    port: int = 0
    _exit: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _web: subprocess.Popen[bytes] | None = None
    _workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalStack:
        from devkit.org import EmulatedOrg

        try:
            if self.redis_url is None:
                self.redis_url = self._exit.enter_context(EmbeddedRedis()).url
            self.port = self.port or free_port()
            self.org = self._exit.enter_context(EmulatedOrg(offload_org_config(), state_dir=self.log_dir / "org"))
            self._exit.callback(_define_outbound(self.org, self.receiver_url).stop)  # type: ignore[attr-defined]
            self.process_env = {
                **org_env(self.org),
                "REDIS_URL": self.redis_url,
                "PORT": str(self.port),
                "WEB_CONCURRENCY": str(self.web_concurrency),
                "OFFLOAD_CALLOUT_SECRETS": self.callout_secret,
                "OFFLOAD_SECRET_KEY": secrets.token_hex(16),
                # One work process per worker unless asked: the tests count processes, and a laptop's
                # CPU count says little about a dyno's (``services/dyno.py``).
                "OFFLOAD_WORKER_CONCURRENCY": "1",
            }
            if self.applink:
                self.process_env.update(self._applink_env())
            self.process_env.update(self.env)
            self._web = self._spawn("web", "web.log")
            for i in range(self.workers):
                self.add_worker(i)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, log_name: str, args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / log_name, "ab")  # closed with the stack
        self._exit.callback(log.close)
        commands = APPLINK_PROCESS_TYPES if self.applink else None
        return spawn(name, self.process_env, args, commands=commands, stdout=log, stderr=subprocess.STDOUT)

    def _applink_env(self) -> dict[str, str]:
        """The AppLink stand-ins and variables (:func:`applink_env`); the API is ``self.applink_api``."""
        self.applink_api, env = applink_env(self.org, self._exit, self.log_dir / "bin")
        return env

    def add_worker(self, index: int | None = None) -> subprocess.Popen[bytes]:
        """Start one more worker process (Procfile ``worker``)."""
        index = len(self._workers) if index is None else index
        worker = self._spawn("worker", f"worker-{index}.log", self.worker_args)
        self._workers.append(worker)
        return worker

    @property
    def worker_processes(self) -> list[subprocess.Popen[bytes]]:
        return list(self._workers)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._web is not None and self._web.poll() is not None:
                raise RuntimeError(f"web exited with {self._web.returncode}:\n{self.log('web.log')}")
            try:
                if requests.get(self.receiver_url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"web did not become ready in {timeout} s:\n{self.log('web.log')}")

    def log(self, name: str) -> str:
        path = self.log_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.log_dir.glob("*.log")))

    def stop(self) -> None:
        for worker in self._workers:
            stop(worker)
        self._workers.clear()
        if self._web is not None:
            stop(self._web)
            self._web = None
        self._exit.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_redis_url() -> str | None:
    """``REDIS_URL`` if set (the caller's Redis), else None (start an embedded one)."""
    return os.environ.get("REDIS_URL") or None
