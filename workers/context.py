"""What a job's handler gets besides its payload (:class:`JobContext`), and the worker's settings.

Its own module so that both the runner (which builds one per job) and the supervisor (which tells
Salesforce about a job it had to kill on its last attempt) use the same contract.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import redis

from services.envelope import Envelope
from services.settings import Settings


@functools.cache
def worker_settings() -> Settings:
    """Settings for this worker process, read once."""
    return Settings.from_env()


@dataclass
class JobContext:
    """What a handler gets besides its payload."""

    job_id: str
    process: str
    envelope: Envelope
    settings: Settings
    connection: redis.Redis
    attempt: int = 1
    final_attempt: bool = True
    _salesforce: Any = field(default=None, repr=False)

    @property
    def org_id(self) -> str | None:
        return self.envelope.org_id

    def salesforce(self) -> Any:
        """The Salesforce client for this job (built on first use; see :mod:`services.salesforce.client`)."""
        if self._salesforce is None:
            from services.salesforce.client import client_for_job

            self._salesforce = client_for_job(self)
        return self._salesforce
