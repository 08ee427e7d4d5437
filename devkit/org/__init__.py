"""A local Salesforce org emulator that speaks the real wire formats.

Salesforce orgs can't be reached from a developer machine or CI, so Offload ships an org
that serves the same OAuth, REST, composite, Files and Platform Event formats (see
``docs/devorg.md`` for what is emulated and the sources). Start one with::

    from devkit.org import EmulatedOrg
    with EmulatedOrg() as org:
        ...  # org.base_url, org.ca_bundle, org.client_id, org.client_secret, org.state
"""

from __future__ import annotations

from .app import create_org_app
from .config import OrgConfig
from .server import EmulatedOrg
from .state import OrgState

__all__ = ["EmulatedOrg", "OrgConfig", "OrgState", "create_org_app"]
