"""``offload org``: run the org emulator in the foreground, or drive a running one.

``offload org`` (or ``offload org serve``) starts the emulator and prints its URL, CA bundle,
org id, dev credentials and the environment lines to export. The other subcommands talk to
a running emulator's ``/_emulator`` admin API (``--url`` / ``OFFLOAD_ORG_URL``, CA from
``--ca-bundle`` / ``OFFLOAD_ORG_CA_BUNDLE``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import click
import requests

from .config import OrgConfig
from .server import EmulatedOrg

logger = logging.getLogger(__name__)


def _serve(port: int, state_dir: str | None, org_id: str | None, client_id: str | None,
           client_secret: str | None, username: str | None, api_version: str | None,
           jwt_cert: str | None) -> None:
    config = OrgConfig()
    directory = Path(state_dir or ".offload/devorg")
    saved = directory / "credentials.json"  # keep generated dev credentials across restarts
    if saved.exists():
        known = json.loads(saved.read_text())
        config.client_id, config.client_secret = known["client_id"], known["client_secret"]
    for name, value in (("org_id", org_id), ("client_id", client_id), ("client_secret", client_secret),
                        ("username", username), ("api_version", api_version)):
        if value:
            setattr(config, name, value)
    if jwt_cert:
        config.jwt_cert_pem = Path(jwt_cert).read_text()
    org = EmulatedOrg(config, port=port, state_dir=directory)
    saved.touch(mode=0o600)
    saved.write_text(json.dumps({"client_id": config.client_id, "client_secret": config.client_secret}))
    org.listen()  # bind first so the printed URL has the real port
    from .outbound_admin import ensure_sender

    ensure_sender(org.state)
    click.echo(f"Salesforce org emulator listening on {org.base_url}")
    click.echo(f"  CA bundle:     {org.ca_bundle}")
    click.echo(f"  Org id:        {org.org_id}")
    click.echo(f"  Username:      {org.username}")
    click.echo(f"  Client id:     {org.client_id}")
    click.echo(f"  Client secret: {org.client_secret}")
    click.echo("Export these to point Offload at it:")
    for key, value in org.env().items():
        click.echo(f"export {key}={value}")
    token = secrets.token_urlsafe(24)
    click.echo(f"export OFFLOAD_OUTBOUND_TOKENS={token}")
    click.echo(f"Outbound Message endpoints: http://127.0.0.1:<port>/outbound/<process>?token={token}")
    try:
        org.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopping")


_SERVE_OPTIONS = [
    click.option("--port", type=int, default=lambda: int(os.environ.get("OFFLOAD_ORG_PORT", "8443")),
                 show_default="8443 or OFFLOAD_ORG_PORT", help="0 picks a free port."),
    click.option("--state-dir", envvar="OFFLOAD_ORG_STATE_DIR", help="Files, CA (default .offload/devorg)."),
    click.option("--org-id", envvar="OFFLOAD_ORG_ID"),
    click.option("--client-id", envvar="OFFLOAD_ORG_CLIENT_ID"),
    click.option("--client-secret", envvar="OFFLOAD_ORG_CLIENT_SECRET"),
    click.option("--username", envvar="OFFLOAD_ORG_USERNAME"),
    click.option("--api-version", envvar="OFFLOAD_ORG_API_VERSION"),
    click.option("--jwt-cert", envvar="OFFLOAD_ORG_JWT_CERT", help="PEM certificate for the JWT bearer flow."),
]


def _with_serve_options(func: Any) -> Any:
    for option in reversed(_SERVE_OPTIONS):
        func = option(func)
    return func


@click.group(name="org", invoke_without_command=True)
@_with_serve_options
@click.pass_context
def org(ctx: click.Context, **options: Any) -> None:
    """Local Salesforce org emulator (OAuth, REST, Files, Platform Events)."""
    if ctx.invoked_subcommand is None:
        _serve(**options)


@org.command()
@_with_serve_options
def serve(**options: Any) -> None:
    """Start the emulator in the foreground."""
    _serve(**options)


class Admin:
    """Client of a running emulator's /_emulator API."""

    def __init__(self, url: str | None, ca_bundle: str | None):
        if not url:
            raise click.UsageError("no emulator URL: pass --url or set OFFLOAD_ORG_URL")
        self.url = url.rstrip("/") + "/_emulator"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_bundle or True

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, self.url + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the emulator at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise click.ClickException(f"{response.status_code}: {response.text}")
        return response.json()


def _admin_options(func: Any) -> Any:
    func = click.option("--ca-bundle", envvar="OFFLOAD_ORG_CA_BUNDLE", help="CA PEM of the emulator.")(func)
    return click.option("--url", envvar="OFFLOAD_ORG_URL", help="Emulator base URL.")(func)


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _parse_assignments(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``Name=Acme`` sets a string; ``Employees:=42`` sets a JSON value."""
    fields: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair:
            key, raw = pair.split(":=", 1)
            fields[key] = json.loads(raw)
        elif "=" in pair:
            key, value = pair.split("=", 1)
            fields[key] = value
        else:
            raise click.BadParameter(f"{pair!r} is not field=value or field:=json")
    return fields


@org.group()
def records() -> None:
    """Seed and inspect records."""


@records.command("create")
@click.argument("sobject")
@click.argument("assignments", nargs=-1)
@_admin_options
def records_create(sobject: str, assignments: tuple[str, ...], url: str, ca_bundle: str) -> None:
    """Create a SOBJECT record from field=value pairs."""
    _echo(Admin(url, ca_bundle).call("POST", "/records",
                                     json={"sobject": sobject, "fields": _parse_assignments(assignments)}))


@records.command("list")
@click.argument("sobject", required=False)
@_admin_options
def records_list(sobject: str | None, url: str, ca_bundle: str) -> None:
    """List records (of one type, or all)."""
    _echo(Admin(url, ca_bundle).call("GET", "/records", params={"sobject": sobject} if sobject else None))


@org.group()
def files() -> None:
    """Upload and list Salesforce Files."""


@files.command("upload")
@click.argument("record_id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_admin_options
def files_upload(record_id: str, path: str, url: str, ca_bundle: str) -> None:
    """Upload PATH as a ContentVersion linked to RECORD_ID."""
    with open(path, "rb") as handle:
        _echo(Admin(url, ca_bundle).call("POST", "/files", data={"record_id": record_id},
                                         files={"file": (Path(path).name, handle)}))


@files.command("list")
@_admin_options
def files_list(url: str, ca_bundle: str) -> None:
    """List ContentVersions with the records they are linked to."""
    _echo(Admin(url, ca_bundle).call("GET", "/files"))


@org.group()
def events() -> None:
    """Platform events published to the org."""


@events.command("list")
@click.option("--type", "event_type", help="Only this event type, e.g. Offload_Job_Event__e.")
@_admin_options
def events_list(event_type: str | None, url: str, ca_bundle: str) -> None:
    """List published platform events."""
    _echo(Admin(url, ca_bundle).call("GET", "/events", params={"type": event_type} if event_type else None))


@org.group()
def faults() -> None:
    """Inject errors and delays into REST calls."""


@faults.command("add")
@click.argument("pattern")
@click.option("--error", type=click.Choice(["SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED",
                                            "UNABLE_TO_LOCK_ROW", "INVALID_SESSION_ID"]))
@click.option("--method", help="Only this HTTP method.")
@click.option("--count", type=int, help="Fire for the next N matching calls.")
@click.option("--probability", type=float, help="Fire with this probability (0-1).")
@click.option("--delay", type=float, default=0.0, help="Seconds to wait before answering.")
@_admin_options
def faults_add(pattern: str, error: str | None, method: str | None, count: int | None,
               probability: float | None, delay: float, url: str, ca_bundle: str) -> None:
    """Add a fault for paths matching PATTERN (glob, or re:REGEX)."""
    if count is not None and probability is not None:
        raise click.UsageError("use --count or --probability, not both")
    body = {"pattern": pattern, "error": error, "method": method, "count": count,
            "probability": probability, "delay": delay}
    _echo(Admin(url, ca_bundle).call("POST", "/faults", json=body))


@faults.command("list")
@_admin_options
def faults_list(url: str, ca_bundle: str) -> None:
    _echo(Admin(url, ca_bundle).call("GET", "/faults"))


@faults.command("clear")
@_admin_options
def faults_clear(url: str, ca_bundle: str) -> None:
    """Remove every fault rule."""
    _echo(Admin(url, ca_bundle).call("DELETE", "/faults"))


@org.group()
def tokens() -> None:
    """Access tokens issued by the org."""


@tokens.command("expire")
@_admin_options
def tokens_expire(url: str, ca_bundle: str) -> None:
    """Expire every issued token now (the next REST call answers 401 INVALID_SESSION_ID)."""
    _echo(Admin(url, ca_bundle).call("POST", "/tokens/expire"))


@tokens.command("list")
@_admin_options
def tokens_list(url: str, ca_bundle: str) -> None:
    _echo(Admin(url, ca_bundle).call("GET", "/tokens"))


@org.group()
def outbound() -> None:
    """Outbound Messages: define them, send them, watch deliveries (Setup > Outbound Messages)."""


@outbound.command("define")
@click.argument("name")
@click.option("--object", "sobject", required=True, help="sObject whose create/edit fires it, e.g. Account.")
@click.option("--endpoint", required=True, help="e.g. http://127.0.0.1:5000/outbound/resize-image?token=<OFFLOAD_OUTBOUND_TOKENS>")
@click.option("--fields", default="Id", show_default=True, help="Comma-separated fields to send.")
@click.option("--send-session-id", is_flag=True, help="Send a session id (Salesforce then requires https).")
@_admin_options
def outbound_define(name: str, sobject: str, endpoint: str, fields: str, send_session_id: bool, url: str,
                    ca_bundle: str) -> None:
    body = {"name": name, "sobject": sobject, "endpoint_url": endpoint,
            "fields": [f.strip() for f in fields.split(",") if f.strip()], "include_session_id": send_session_id}
    _echo(Admin(url, ca_bundle).call("POST", "/outbound-messages", json=body))


@outbound.command("list")
@_admin_options
def outbound_list(url: str, ca_bundle: str) -> None:
    _echo(Admin(url, ca_bundle).call("GET", "/outbound-messages"))


@outbound.command("send")
@click.argument("name")
@click.argument("record_ids", nargs=-1, required=True)
@_admin_options
def outbound_send(name: str, record_ids: tuple[str, ...], url: str, ca_bundle: str) -> None:
    """Send now for these records, whatever changed."""
    _echo(Admin(url, ca_bundle).call("POST", f"/outbound-messages/{name}/send", json={"record_ids": record_ids}))


@outbound.command("deliveries")
@_admin_options
def outbound_deliveries(url: str, ca_bundle: str) -> None:
    """Every queued, delivered and expired message with its attempts."""
    _echo(Admin(url, ca_bundle).call("GET", "/deliveries"))
