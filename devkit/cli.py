"""The dev kit's ``offload`` commands: ``dev``, ``org`` and ``demo``.

``offload dev``   receiver + worker from the Procfile, with an embedded Redis and the
                  local org emulator when nothing real is configured.
``offload org``   the local Salesforce org emulator and its admin commands.
``offload demo``  the main job end to end, printed step by step.

:mod:`services.cli` adds them to ``offload`` through the ``offload.commands`` entry points.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator

import click

from devkit.demo import demo
from devkit.embedded_redis import EmbeddedRedis
from devkit.org.cli import org

__all__ = ["demo", "dev", "org"]


@contextlib.contextmanager
def redis_for_dev(echo: bool = True) -> Iterator[str]:
    """``REDIS_URL`` when it is set; otherwise an embedded Redis for as long as the block runs."""
    configured = os.environ.get("REDIS_URL", "").strip()
    if configured:
        if echo:
            click.echo(f"Redis: REDIS_URL ({configured.split('@')[-1]})")
        yield configured
        return
    with EmbeddedRedis() as server:
        if echo:
            click.echo(f"Redis: REDIS_URL is not set, so an embedded one runs at {server.url} ({server.kind})")
        yield server.url


@click.command()
@click.option("--port", default=5000, show_default=True, help="Port for the receiver.")
@click.option("--workers", "worker_count", default=1, show_default=True, help="How many worker processes.")
@click.option("--org/--no-org", "with_org", default=None,
              help="Start the local org emulator (default: when SALESFORCE_CLIENT_ID is unset).")
@click.option("--applink", is_flag=True,
              help="Run Procfile.applink: the AppLink service-mesh stand-in in front of the receiver (needs the org).")
def dev(port: int, worker_count: int, with_org: bool | None, applink: bool) -> None:
    """Run receiver + workers as the Procfile says, with local Redis and org when none is configured."""
    from honcho.manager import Manager

    from devkit.procfile import APPLINK_PROCESS_TYPES, process_env, procfile_commands

    if with_org is None:
        with_org = not os.environ.get("SALESFORCE_CLIENT_ID")
    if applink and not with_org:
        raise click.UsageError("--applink needs the org emulator (its AppLink API stand-in mints the sessions).")
    commands = APPLINK_PROCESS_TYPES if applink else procfile_commands()
    with contextlib.ExitStack() as stack:
        env = {"REDIS_URL": stack.enter_context(redis_for_dev()), "PORT": str(port)}
        if with_org:
            from devkit.devstack import start_dev_org

            env.update(stack.enter_context(start_dev_org(receiver_url=f"http://127.0.0.1:{port}", applink=applink)))
        env.setdefault("OFFLOAD_CALLOUT_SECRETS", os.environ.get("OFFLOAD_CALLOUT_SECRETS") or secrets.token_hex(16))
        env.setdefault("WEB_CONCURRENCY", "2")
        click.echo(f"Receiver: http://127.0.0.1:{port}  (OpenAPI: http://127.0.0.1:{port}/openapi.json)")
        click.echo("Ctrl-C stops everything.\n")
        manager = Manager()
        child_env = process_env(env)
        manager.add_process("web", commands["web"], env=child_env)
        for i in range(worker_count):
            manager.add_process(f"worker.{i + 1}", commands["worker"], env=child_env)
        manager.loop()
        sys.exit(manager.returncode or 0)
