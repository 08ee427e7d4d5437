"""``EmulatedOrg``: the org app served over real HTTPS on 127.0.0.1 with a local test CA.

simple-salesforce hard-codes ``https://`` (``simple_salesforce/api.py`` in
https://github.com/simple-salesforce/simple-salesforce), so the emulator must speak TLS. A
CA made with ``trustme`` signs a certificate for ``127.0.0.1`` (IP SAN) and ``localhost``; the
CA bundle is written to ``<state_dir>/ca.pem`` for clients to trust. The CA key is kept
(``ca-key.pem``, mode 0600) so restarting with the same state dir keeps clients' trust.

Trusting it from requests: pass ``verify=<ca_bundle>`` per request, or use a Session with
``session.verify = ca_bundle`` *and* ``session.trust_env = False`` (``REQUESTS_CA_BUNDLE`` in
the environment otherwise overrides ``session.verify``), or set ``REQUESTS_CA_BUNDLE`` to the
bundle for the process.

The server is cheroot (CherryPy's WSGI server), not werkzeug's development server: werkzeug answers every
request with ``Connection: close``, where Salesforce keeps HTTPS connections open between requests (HTTP/1.1
persistent connections, https://www.rfc-editor.org/rfc/rfc9112#section-9.3). An emulator that closed them would
hide a client that opens a connection (and a TLS handshake) per call, and would charge every client that
handshake on each call.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path
from typing import Any

import requests
import trustme
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .app import create_org_app
from .config import OrgConfig
from .state import OrgState

logger = logging.getLogger(__name__)


SERVER_THREADS = 32
"""Requests served at once (cheroot keeps idle keep-alive connections off its threads, so this bounds busy ones:
enough for a test's workers, web processes and slow-fault requests together)."""


def _load_or_make_ca(state_dir: Path) -> trustme.CA:
    cert_path, key_path = state_dir / "ca.pem", state_dir / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    ca = trustme.CA(organization_name="Offload dev org emulator")
    ca.cert_pem.write_to_path(str(cert_path))
    key_path.touch(mode=0o600)
    ca.private_key_pem.write_to_path(str(key_path))
    return ca


class EmulatedOrg:
    """A running emulated org. Use as a context manager, or ``start()``/``stop()``.

    Attributes:
        base_url: ``https://127.0.0.1:PORT`` (no trailing slash), also the ``instance_url``.
        ca_bundle: path of the CA certificate PEM clients must trust.
        state: the ``OrgState`` (records, events, tokens, faults).
        client_id / client_secret / username / org_id: the dev credentials.
    """

    def __init__(
        self,
        config: OrgConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | Path | None = None,
        state: OrgState | None = None,
    ):
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the org emulator only listens on 127.0.0.1")
        self.state = state or OrgState(config, state_dir=state_dir)
        self.host, self.port = host, port
        self.ca_bundle = str(self.state.state_dir / "ca.pem")
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    # credentials -------------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        return self.state.config.client_id

    @property
    def client_secret(self) -> str:
        return self.state.config.client_secret

    @property
    def username(self) -> str:
        return self.state.config.username

    @property
    def org_id(self) -> str:
        return self.state.config.org_id

    @property
    def base_url(self) -> str:
        return self.state.base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/services/oauth2/token"

    # lifecycle ---------------------------------------------------------------------------
    def _bind(self) -> wsgi.Server:
        ca = _load_or_make_ca(self.state.state_dir)
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        pem = self.state.state_dir / "server.pem"  # the adapter's constructor wants files; the context is ours
        pem.touch(mode=0o600)
        leaf.private_key_and_cert_chain_pem.write_to_path(str(pem))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        leaf.configure_cert(context)
        server = wsgi.Server((self.host, self.port), create_org_app(self.state), numthreads=SERVER_THREADS,
                             server_name="localhost")
        adapter = BuiltinSSLAdapter(str(pem), str(pem))
        adapter.context = context
        server.ssl_adapter = adapter
        server.prepare()  # binds; a port of 0 becomes the one the kernel chose
        self.port = server.bind_addr[1]
        self.state.base_url = f"https://127.0.0.1:{self.port}"
        return server

    def listen(self) -> EmulatedOrg:
        """Bind the HTTPS socket (fixing ``base_url``) without serving yet."""
        if self._server is None:
            self._server = self._bind()
        return self

    def start(self) -> EmulatedOrg:
        """Serve in a daemon thread; returns once the socket is listening."""
        if self._thread is not None:
            return self
        self.listen()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve, name="devorg-https", daemon=True)
        self._thread.start()
        logger.info("org emulator at %s (CA %s)", self.base_url, self.ca_bundle)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI's foreground mode)."""
        self.listen()
        assert self._server is not None
        try:
            self._server.serve()
        finally:
            self._server.stop()
            self._server = None

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def close(self) -> None:
        """Stop serving and remove the state dir if the org created it."""
        self.stop()
        self.state.close()

    def __enter__(self) -> EmulatedOrg:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # client helpers ------------------------------------------------------------------------
    def session(self) -> requests.Session:
        """A requests Session that trusts this org's CA regardless of REQUESTS_CA_BUNDLE."""
        session = requests.Session()
        session.verify = self.ca_bundle
        session.trust_env = False
        return session

    def issue_token(self, username: str | None = None) -> str:
        """A fresh access token without going through OAuth (admin shortcut)."""
        return self.state.tokens.issue(username or self.username, "admin").access_token

    def env(self) -> dict[str, str]:
        """Environment variables pointing Offload at this org."""
        return {
            "SALESFORCE_LOGIN_URL": self.base_url,
            "SALESFORCE_CLIENT_ID": self.client_id,
            "SALESFORCE_CLIENT_SECRET": self.client_secret,
            "SALESFORCE_USERNAME": self.username,
            "SALESFORCE_API_VERSION": self.state.config.api_version,
            "OFFLOAD_ORG_IDS": self.org_id,
            "OFFLOAD_ORG_URL": self.base_url,
            "OFFLOAD_ORG_CA_BUNDLE": self.ca_bundle,
            "OFFLOAD_SALESFORCE_CA_BUNDLE": self.ca_bundle,
        }


def ca_bundle_from_env() -> str | bool:
    """CA bundle for admin clients: ``OFFLOAD_ORG_CA_BUNDLE`` or system trust."""
    return os.environ.get("OFFLOAD_ORG_CA_BUNDLE") or True
