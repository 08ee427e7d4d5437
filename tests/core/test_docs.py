"""Docs that cannot drift: the README's configuration table and app.json follow services/settings.py."""

from __future__ import annotations

import json
from pathlib import Path

from devkit.procfile import PROCESS_TYPES, procfile_commands
from services.settings import declared, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_config_table_matches_the_settings_module() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- config-table:start -->\n", "\n<!-- config-table:end -->"
    table = readme[readme.index(start) + len(start): readme.index(end)]
    assert table == markdown_table(), "README is stale: run `python -m services.settings` and paste the table"


def test_app_json_describes_every_variable_heroku_does_not_set() -> None:
    manifest = json.loads((ROOT / "app.json").read_text())
    described = set(manifest["env"])
    # PORT and REDIS_URL come from Heroku, the HEROKU_APPLINK_* pair from the heroku-applink add-on.
    expected = {d["name"] for d in declared()} - {"PORT", "REDIS_URL", "HEROKU_APPLINK_API_URL", "HEROKU_APPLINK_TOKEN"}
    assert described == expected
    assert all(entry["description"] for entry in manifest["env"].values())
    secrets = {name for name, entry in manifest["env"].items() if entry.get("generator") == "secret"}
    assert "OFFLOAD_CALLOUT_SECRETS" in secrets
    assert set(manifest["formation"]) == {"web", "worker"}
    assert any("heroku-redis" in addon["plan"] for addon in manifest["addons"])
    assert "test" in manifest["environments"]


def test_procfile_is_the_contract() -> None:
    """The repository's Procfile (what Heroku runs) and the dev kit's copy of it say the same."""
    assert procfile_commands(ROOT / "Procfile") == PROCESS_TYPES
    assert PROCESS_TYPES["web"] == "gunicorn --config python:services.receiver.gunicorn_conf services.receiver.wsgi:app"
    assert PROCESS_TYPES["worker"] == "python -m workers"


def test_the_applink_procfile_puts_the_mesh_in_front_of_the_same_processes() -> None:
    from devkit.applink.mesh import DEFAULT_BYPASS_ROUTES, bypass_routes
    from devkit.procfile import APPLINK_PROCESS_TYPES

    assert procfile_commands(ROOT / "Procfile.applink") == APPLINK_PROCESS_TYPES
    assert APPLINK_PROCESS_TYPES["web"] == "heroku-applink-service-mesh " + PROCESS_TYPES["web"]
    assert bypass_routes(ROOT) == DEFAULT_BYPASS_ROUTES
    assert not any(route.startswith("/applink") for route in DEFAULT_BYPASS_ROUTES)
