"""Every setting Offload reads, declared once, read from the environment once.

Twelve-factor style (and Heroku's): configuration lives in environment
variables. Each one is declared below with its default and a one-line
description; ``README.md`` and ``app.json`` document the same names, and a test
checks they do not drift. :meth:`Settings.from_env` parses and validates them
and raises :class:`~services.errors.ConfigError` naming the variable to set.

Usage::

    settings = Settings.from_env()            # os.environ
    settings.require("web")                   # what the receiver cannot start without
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from services.dyno import default_worker_concurrency
from services.errors import ConfigError
from services.sfids import is_valid_id, standard_sobject, to_18
from services.variants import DEFAULT_VARIANTS_SPEC, Variant, parse_variants

Parser = Callable[[str, str], Any]


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _csv(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


MIN_TOKEN_CHARS = 16


def _tokens(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated secrets, each long enough not to be guessed (a URL-safe random string)."""
    tokens = _csv(name, raw)
    for token in tokens:
        if len(token) < MIN_TOKEN_CHARS or not re.fullmatch(r"[A-Za-z0-9._~-]+", token):
            raise ConfigError(
                f"{name}: each token must be at least {MIN_TOKEN_CHARS} URL-safe characters (A-Z, a-z, 0-9, "
                "'.', '_', '~', '-'), e.g. the output of `openssl rand -hex 32`."
            )
    return tokens


@dataclass(frozen=True)
class RecordTypes:
    """Which records a job may name (``OFFLOAD_RECORD_TYPES``): a job "by record" works on every file of it.

    Unset, any object but User: a User id would make a job of every file that user owns (their
    personal library), and anyone able to send a notification could name one. Set, only the listed
    sObject API names (``Account,Property__c``) and 3-character key prefixes (``a0B``: a callout names a
    custom object's record only by its Id, and custom prefixes differ per org); ``*`` allows all.
    A file (ContentVersion) names itself and is always allowed.
    """

    names: frozenset[str] | None = None
    prefixes: frozenset[str] = frozenset()

    DENIED_BY_DEFAULT = frozenset({"user"})
    ALWAYS_ALLOWED = frozenset({"contentversion"})

    def allows(self, sobject: str | None, record_id: str | None) -> bool:
        """``sobject`` is the type when the caller said it (an Outbound Message does); a callout gives only
        the Id, whose key prefix names a standard object (:func:`services.sfids.standard_sobject`)."""
        if sobject is None and record_id is not None:
            sobject = standard_sobject(record_id)
        kind = (sobject or "").lower()
        if kind in self.ALWAYS_ALLOWED:
            return True
        if self.names is None:
            return kind not in self.DENIED_BY_DEFAULT
        if "*" in self.names or (kind and kind in self.names):
            return True
        return record_id is not None and record_id[:3] in self.prefixes

    def describe(self) -> str:
        if self.names is None:
            return "any object but User"
        return ", ".join(sorted(self.names) + sorted(self.prefixes))


def _record_types(name: str, raw: str) -> RecordTypes:
    entries = _csv(name, raw)
    if not entries:
        return RecordTypes()
    names, prefixes = set(), set()
    for entry in entries:
        if re.fullmatch(r"[A-Za-z0-9]{3}", entry):
            prefixes.add(entry)
        elif entry == "*" or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", entry):
            names.add(entry.lower())
        else:
            raise ConfigError(f"{name}: {entry!r} is neither an sObject API name (Account, Property__c), "
                              "a 3-character key prefix (a0B) nor '*'.")
    return RecordTypes(frozenset(names), frozenset(prefixes))


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"Set {name} to a whole number (got {raw!r}).") from None
    if value <= 0:
        raise ConfigError(f"Set {name} to a number above zero (got {raw!r}).")
    return value


def _concurrency(name: str, raw: str) -> int:
    """``auto`` (one per CPU, as the memory holds: :func:`services.dyno.default_worker_concurrency`) or a number."""
    if raw.strip().lower() == "auto":
        return default_worker_concurrency()
    return _positive_int(name, raw)


def _optional_port(name: str, raw: str) -> int | None:
    """Empty: None; else a TCP port."""
    if not raw.strip():
        return None
    port = _positive_int(name, raw)
    if port > 65535:
        raise ConfigError(f"Set {name} to a TCP port, 1-65535 (got {raw!r}).")
    return port


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"Set {name} to a number (got {raw!r}).") from None
    if value <= 0:
        raise ConfigError(f"Set {name} to a number above zero (got {raw!r}).")
    return value


def _org_ids(name: str, raw: str) -> tuple[str, ...]:
    """Org ids in their 18-character form, so 15- and 18-character inputs compare equal."""
    ids = []
    for part in _csv(name, raw):
        if not (is_valid_id(part) and part.startswith("00D")):
            raise ConfigError(
                f"Set {name} to comma-separated Salesforce org ids (15 or 18 characters, starting with 00D; "
                f"Setup > Company Information > Salesforce.com Organization ID). {part!r} is not one."
            )
        ids.append(to_18(part))
    return tuple(ids)


def _https_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ConfigError(f"Set {name} to an https:// URL such as https://login.salesforce.com (got {raw!r}).")
    return value


def _optional_https_url(name: str, raw: str) -> str:
    return _https_url(name, raw) if raw.strip() else ""


def _redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if urlparse(value).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"Set {name} to a redis://, rediss:// or unix:// URL (got {raw!r}).")
    return value


def _api_version(name: str, raw: str) -> str:
    value = raw.strip().lstrip("vV")
    if not re.fullmatch(r"\d{2}\.0", value):
        raise ConfigError(f"Set {name} to a Salesforce API version such as 66.0 (got {raw!r}).")
    return value


def _log_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"logfmt", "json"}:
        raise ConfigError(f"Set {name} to logfmt or json (got {raw!r}).")
    return value


def _variants(name: str, raw: str) -> tuple[Variant, ...]:
    return parse_variants(raw, name)


PDF_VARIANTS_SPEC = "page:1600:jpeg"
PDF_MAX_VARIANTS = 4
PDF_MAX_PAGES = 50
"""Pages x variants of one PDF are uploaded in one all-or-none sObject Collections insert, which takes at most
200 records (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm):
50 pages x 4 variants."""
VARIANT_NAME_MAX = 40 - len(f"-{PDF_MAX_PAGES}")
"""A page rendition's Offload_Variant__c (40 characters) is ``<variant>-<page>``."""


def _pdf_variants(name: str, raw: str) -> tuple[Variant, ...]:
    variants = parse_variants(raw, name, example=PDF_VARIANTS_SPEC, max_variants=PDF_MAX_VARIANTS)
    for variant in variants:
        if len(variant.name) > VARIANT_NAME_MAX:
            raise ConfigError(f"{name}: the variant name {variant.name!r} is longer than {VARIANT_NAME_MAX} "
                              "characters (a page's Offload_Variant__c is <name>-<page>, at most 40).")
    return variants


def _pdf_max_pages(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value > PDF_MAX_PAGES:
        raise ConfigError(f"Set {name} to at most {PDF_MAX_PAGES} (got {raw!r}): a document's page images "
                          "are written in one Salesforce call of at most 200 records.")
    return value


GENERIC_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
"""Salesforce's shared login hosts: fine for JWT bearer, refused for the client credentials flow."""


def setting(env: str, default: str, description: str, parse: Parser = _text, *, secret: bool = False) -> Any:
    """Declare one environment variable as a dataclass field of :class:`Settings`."""
    return field(
        default=None,
        metadata={"env": env, "default": default, "description": description, "parse": parse, "secret": secret},
    )


@dataclass(frozen=True)
class Settings:
    """Offload's configuration, parsed and validated. Build it with :meth:`from_env`."""

    port: int = setting("PORT", "5000", "Port the web process listens on (Heroku sets it).", _positive_int)
    redis_url: str = setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis for the job queue; Heroku Key-Value Store sets it (rediss:// with a self-signed certificate).",
        _redis_url,
    )
    public_url: str = setting(
        "OFFLOAD_PUBLIC_URL",
        "",
        "The app's public https:// URL (e.g. https://offload-acme.herokuapp.com) for statusUrl and the "
        "OpenAPI servers entry; empty: the request's own scheme and Host.",
        _optional_https_url,
    )
    salesforce_login_url: str = setting(
        "SALESFORCE_LOGIN_URL",
        "https://login.salesforce.com",
        "Where workers get OAuth tokens: your My Domain URL (https://<mydomain>.my.salesforce.com; "
        "required for client credentials), or login/test.salesforce.com for JWT bearer.",
        _https_url,
    )
    salesforce_client_id: str = setting(
        "SALESFORCE_CLIENT_ID", "", "Consumer key of the Connected App the workers log in with."
    )
    salesforce_client_secret: str = setting(
        "SALESFORCE_CLIENT_SECRET",
        "",
        "Consumer secret for the client credentials flow (run-as integration user).",
        secret=True,
    )
    salesforce_username: str = setting(
        "SALESFORCE_USERNAME", "", "Integration user for the JWT bearer flow (with SALESFORCE_PRIVATE_KEY)."
    )
    salesforce_private_key: str = setting(
        "SALESFORCE_PRIVATE_KEY",
        "",
        "PEM private key whose certificate is on the Connected App (JWT bearer flow).",
        secret=True,
    )
    salesforce_api_version: str = setting(
        "SALESFORCE_API_VERSION", "66.0", "REST API version the workers call (66.0 = Spring '26).", _api_version
    )
    org_ids: tuple[str, ...] = setting(
        "OFFLOAD_ORG_IDS",
        "",
        "Comma-separated Salesforce org ids (15 or 18 chars) allowed to send Outbound Messages.",
        _org_ids,
    )
    outbound_tokens: tuple[str, ...] = setting(
        "OFFLOAD_OUTBOUND_TOKENS",
        "",
        "Comma-separated secrets an Outbound Message's Endpoint URL carries as ?token=; list two while rotating.",
        _tokens,
        secret=True,
    )
    callout_secrets: tuple[str, ...] = setting(
        "OFFLOAD_CALLOUT_SECRETS",
        "",
        "Comma-separated HMAC secrets for X-Offload-Signature; list two while rotating.",
        _csv,
        secret=True,
    )
    api_keys: tuple[str, ...] = setting(
        "OFFLOAD_API_KEYS",
        "",
        "Comma-separated static keys accepted as 'Authorization: Bearer <key>' (Flow set-ups).",
        _csv,
        secret=True,
    )
    completion_event: str = setting(
        "OFFLOAD_COMPLETION_EVENT",
        "",
        "Platform Event published when a job ends, e.g. Offload_Job_Event__e; empty: none.",
    )
    dashboard_password: str = setting(
        "OFFLOAD_DASHBOARD_PASSWORD",
        "",
        "Password for the rq dashboard at /rq (user 'admin'); empty: the dashboard is off.",
        secret=True,
    )
    secret_key: str = setting(
        "OFFLOAD_SECRET_KEY",
        "",
        "Key that encrypts Outbound Message session ids and AppLink access tokens at rest in Redis; empty: "
        "they are never stored.",
        secret=True,
    )
    record_types: RecordTypes = setting(
        "OFFLOAD_RECORD_TYPES",
        "",
        "Records a job may name: sObject names and key prefixes, comma-separated, or '*'; empty: any but User.",
        _record_types,
    )
    max_files_per_record: int = setting(
        "OFFLOAD_MAX_FILES_PER_RECORD", "50",
        "Most files one job 'by record' works on; the rest are left for the next job on that record.",
        _positive_int,
    )
    image_variants: tuple[Variant, ...] = setting(
        "OFFLOAD_IMAGE_VARIANTS",
        DEFAULT_VARIANTS_SPEC,
        "Renditions to make, as name:long-edge-px:format (jpeg, webp or png).",
        _variants,
    )
    pdf_variants: tuple[Variant, ...] = setting(
        "OFFLOAD_PDF_VARIANTS",
        PDF_VARIANTS_SPEC,
        "Page images of a PDF, as name:long-edge-px:format (at most 4); page n of variant 'page' is page-n.",
        _pdf_variants,
    )
    pdf_max_pages: int = setting(
        "OFFLOAD_PDF_MAX_PAGES", "5", "Pages of a PDF rendered as page images, from the first (at most 50).",
        _pdf_max_pages,
    )
    pdf_max_page_count: int = setting(
        "OFFLOAD_PDF_MAX_PAGE_COUNT", "1000",
        "A PDF with more pages than this is refused (DOCUMENT_REJECTED) without rendering any.",
        _positive_int,
    )
    max_pixels: int = setting(
        "OFFLOAD_MAX_PIXELS", "50000000",
        "Largest image accepted, in pixels (decompression-bomb guard); also caps each PDF page image.",
        _positive_int,
    )
    max_jpeg_scans: int = setting(
        "OFFLOAD_MAX_JPEG_SCANS", "100",
        "Most scans a JPEG may have; more is refused before decoding (each scan costs a pass over the image).",
        _positive_int,
    )
    max_image_bytes: int = setting(
        "OFFLOAD_MAX_IMAGE_BYTES", "104857600",
        "Largest source file (photo or PDF) downloaded from Salesforce, in bytes.",
        _positive_int,
    )
    max_body_bytes: int = setting(
        "OFFLOAD_MAX_BODY_BYTES",
        "2000000",
        "Largest request body the receiver reads (an Outbound Message holds up to 100 notifications).",
        _positive_int,
    )
    body_timeout: int = setting(
        "OFFLOAD_BODY_TIMEOUT",
        "10",
        "Seconds a request body may take to arrive; a slower one is answered 408 and its connection closed.",
        _positive_int,
    )
    signature_max_age: int = setting(
        "OFFLOAD_SIGNATURE_MAX_AGE", "300", "Seconds a signed callout's sentAt may differ from now.",
        _positive_int,
    )
    dedupe_ttl: int = setting(
        "OFFLOAD_DEDUPE_TTL",
        "90000",
        "Seconds a delivery is remembered for de-duplication (25 h: longer than Salesforce's 24 h retries).",
        _positive_int,
    )
    job_timeout: int = setting(
        "OFFLOAD_JOB_TIMEOUT", "600", "Seconds a job may run before the worker stops it.", _positive_int
    )
    job_retries: int = setting(
        "OFFLOAD_JOB_RETRIES", "5", "Retries of a transient failure (backoff 15 s doubling, jittered).",
        _positive_int,
    )
    worker_max_jobs: int = setting(
        "OFFLOAD_WORKER_MAX_JOBS",
        "1000",
        "Jobs a work process runs before a fresh one replaces it (returns memory Pillow leaves fragmented).",
        _positive_int,
    )
    worker_concurrency: int = setting(
        "OFFLOAD_WORKER_CONCURRENCY",
        "auto",
        "Work processes one `python -m workers` runs side by side; auto: one per CPU, as many as the dyno's "
        "memory holds at 512 MB each (Standard-1X: 1, Standard-2X: 2, Performance-L: 8).",
        _concurrency,
    )
    retry_base_seconds: float = setting(
        "OFFLOAD_RETRY_BASE_SECONDS",
        "15",
        "Seconds before the first retry of a transient failure; each retry waits twice as long (capped at 1 h).",
        _positive_float,
    )
    salesforce_timeout: float = setting(
        "OFFLOAD_SALESFORCE_TIMEOUT", "30", "Seconds before a Salesforce API call times out.", _positive_float
    )
    salesforce_ca_bundle: str = setting(
        "OFFLOAD_SALESFORCE_CA_BUNDLE",
        "",
        "CA bundle to trust for Salesforce (only for the local org emulator); empty: system CAs.",
    )
    app_port: int | None = setting(
        "APP_PORT",
        "",
        "Set with Heroku AppLink: the web process listens on 127.0.0.1:APP_PORT behind the service mesh "
        "(which takes PORT), and /applink/<process> is open; empty: no AppLink, /applink/* refused.",
        _optional_port,
    )
    applink_api_url: str = setting(
        "HEROKU_APPLINK_API_URL", "",
        "Set by the heroku-applink add-on: its API, where workers fetch the Authorized User's session.",
    )
    applink_token: str = setting(
        "HEROKU_APPLINK_TOKEN", "", "Set by the heroku-applink add-on: the token for HEROKU_APPLINK_API_URL.",
        secret=True,
    )
    heroku_app_id: str = setting(
        "HEROKU_APP_ID", "", "The app's UUID (heroku apps:info --json), sent to the AppLink API as X-App-UUID.",
    )
    applink_authorization: str = setting(
        "OFFLOAD_APPLINK_AUTHORIZATION", "",
        "Developer name of the AppLink Authorized User a job writes back as once the invoking user's token "
        "expired (heroku salesforce:authorizations:add); empty: such a job fails with SESSION_EXPIRED.",
    )
    log_format: str = setting("OFFLOAD_LOG_FORMAT", "logfmt", "Log line format: logfmt or json.", _log_format)
    log_level: str = setting("OFFLOAD_LOG_LEVEL", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every declared variable (unset or empty means the default)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            raw = env.get(meta["env"], "")
            if raw.strip() == "":
                raw = meta["default"]
            values[f.name] = meta["parse"](meta["env"], raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (already parsed values, by attribute name)."""
        return dataclasses.replace(self, **changes)

    @property
    def salesforce_auth_mode(self) -> str | None:
        """``"client_credentials"``, ``"jwt_bearer"``, or None when no credentials are set."""
        if self.salesforce_client_id and self.salesforce_username and self.salesforce_private_key:
            return "jwt_bearer"
        if self.salesforce_client_id and self.salesforce_client_secret:
            return "client_credentials"
        return None

    def require(self, role: str) -> None:
        """Fail start-up when a role (``web`` or ``worker``) lacks what it cannot work without."""
        if role == "web":
            if not self.callout_secrets and not self.api_keys:
                raise ConfigError(
                    "Set OFFLOAD_CALLOUT_SECRETS (or OFFLOAD_API_KEYS): without one the receiver cannot "
                    "tell Salesforce from anyone else."
                )
            if not self.org_ids:
                raise ConfigError(
                    "Set OFFLOAD_ORG_IDS to your org id (Setup > Company Information): Outbound Messages "
                    "from any other org are refused."
                )
            if not self.outbound_tokens:
                # The org id is public (Web-to-Lead forms publish it as "oid"), so it proves nothing alone.
                raise ConfigError(
                    "Set OFFLOAD_OUTBOUND_TOKENS to a long random secret and end each Outbound Message's "
                    "Endpoint URL with ?token=<that secret>: the org id in OFFLOAD_ORG_IDS is public, so "
                    "without a token anyone could send Outbound Messages."
                )
        elif role == "worker":
            partial = bool(self.salesforce_client_id) and self.salesforce_auth_mode is None
            if partial or ((self.salesforce_client_secret or self.salesforce_private_key)
                           and not self.salesforce_client_id):
                raise ConfigError(
                    "Set SALESFORCE_CLIENT_ID with SALESFORCE_CLIENT_SECRET (client credentials) or with "
                    "SALESFORCE_USERNAME and SALESFORCE_PRIVATE_KEY (JWT bearer): the credentials are incomplete."
                )
            host = (urlparse(self.salesforce_login_url).hostname or "").lower()
            if self.salesforce_auth_mode == "client_credentials" and host in GENERIC_LOGIN_HOSTS:
                # Salesforce answers "invalid_grant: request not supported on this domain" there
                # (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm).
                raise ConfigError(
                    f"SALESFORCE_LOGIN_URL is {self.salesforce_login_url}, but the client credentials flow only "
                    "works on the org's My Domain: set SALESFORCE_LOGIN_URL=https://<mydomain>.my.salesforce.com "
                    "(Setup > My Domain)."
                )
        else:
            raise ValueError(f"unknown role {role!r}")


def declared() -> list[dict[str, Any]]:
    """Every variable with its default, description and whether it is secret (for docs and app.json)."""
    return [
        {
            "name": f.metadata["env"],
            "default": f.metadata["default"],
            "description": f.metadata["description"],
            "secret": f.metadata["secret"],
        }
        for f in dataclasses.fields(Settings)
    ]


def markdown_table() -> str:
    """The README's configuration table (``python -m services.settings`` prints it)."""
    rows = ["| Variable | Default | What it is for |", "|---|---|---|"]
    for d in declared():
        default = f"`{d['default']}`" if d["default"] else "(empty)"
        rows.append(f"| `{d['name']}` | {default} | {d['description']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
