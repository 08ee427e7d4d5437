"""The ``offload`` command.

``offload jobs``      list, show, requeue and purge jobs (operators; :mod:`services.ops.cli`).
``offload backfill``  renditions for the files already in the org (:mod:`services.backfill.cli`).

The dev kit adds ``offload dev``, ``offload org`` and ``offload demo`` when the ``dev`` extra is
installed. They are found through the ``offload.commands`` entry point group (declared in
``pyproject.toml``), so the product never imports the dev kit; without the extra, those commands
say which extra to install.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

from services.backfill.cli import backfill
from services.ops.cli import jobs

ENTRY_POINT_GROUP = "offload.commands"
INSTALL_HINT = "pip install 'offload[dev]'"


class _OffloadGroup(click.Group):
    """``offload``: its own commands, plus the ``offload.commands`` entry points, each imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(ep.name for ep in _plugins())})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        for entry_point in _plugins():
            if entry_point.name == cmd_name:
                return _load(entry_point)
        return None


def _plugins() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


@click.group(cls=_OffloadGroup)
def main() -> None:
    """Offload: hand work from Salesforce to Python workers."""


main.add_command(jobs)
main.add_command(backfill)


class _MissingExtra(click.Command):
    """Stands in for a dev kit command whose dependencies are not installed, and says what to install."""

    def __init__(self, name: str, error: ImportError) -> None:
        super().__init__(name, help=f"(needs the dev extra: {INSTALL_HINT})", add_help_option=False,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        self.error = error

    def invoke(self, ctx: click.Context) -> None:
        missing = self.error.name or str(self.error)
        raise click.ClickException(
            f"'offload {self.name}' is part of Offload's dev kit, which needs the dev extra "
            f"({missing} is not installed). Install it with: {INSTALL_HINT}"
        )


def _load(entry_point: EntryPoint) -> click.Command:
    """The entry point's command, or a stand-in that names the missing extra."""
    try:
        command = entry_point.load()
    except ImportError as exc:
        return _MissingExtra(entry_point.name, exc)
    if not isinstance(command, click.Command):
        raise TypeError(f"entry point {entry_point.value} is not a click command")
    return command


if __name__ == "__main__":
    main()
