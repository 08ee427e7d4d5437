"""What a process declaration is: :class:`Process`.

A *process* is one kind of external work (``resize-image``). Its module in
``services/processes/`` declares a :class:`Process`: the name Salesforce uses in URLs,
the marshmallow schema of its JSON payload, the dotted path of its handler,
and how to build a payload from an Outbound Message notification. The
receiver's routes, validation and OpenAPI document, the dashboard and the
docs are all generated from :data:`services.processes.PROCESSES`; adding a process means
adding one module and naming it there.

Declarations are imported by the web app, so they hold no image or Salesforce code: a handler is a
dotted path that only a worker imports.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from services.settings import Settings

NotificationFields = Mapping[str, "str | None"]


@dataclass(frozen=True)
class Process:
    """One kind of work Salesforce can hand to Offload.

    Attributes:
        name: URL segment and queue name, lowercase with dashes (``resize-image``).
        summary: One line for OpenAPI and the docs.
        schema: Validates and normalizes the JSON payload of a callout.
        handler: Dotted path of ``fn(payload, ctx) -> dict``; imported only in workers.
        from_notification: Builds the payload from an Outbound Message notification
            (its sObject type and fields); raises ``ValueError`` when it can't.
        skip_reason: Loop guard: returns why a notification or payload must not be
            processed (for example, it is Offload's own output), or None.
        record_id: The Salesforce record a payload is about (for logs, the completion event and
            ``/jobs/<id>``), so that generic code never reads a process's payload fields.
        result_schema: Documents the handler's result in OpenAPI.
        timeout: Seconds a job may run.
        file_payload: The payload of a job for one file (its ContentVersion Id), for work Offload starts itself
            (the backfill); None for a process that does not take files.
        calls_per_file: Salesforce API calls a job spends on one file, its completion event left out (a plan's
            estimate).
        renditions_per_file: How many files (ContentVersions) one source file becomes at most, under these settings:
            what a backfill reserves of the org's daily file cap per file. 1 for a process that writes one.
        rendition_names: The ``Offload_Variant__c`` names one source file gets under these settings, when they are
            known before rendering: a backfill then takes a file that lacks any of them (a variant added to
            ``OFFLOAD_IMAGE_VARIANTS`` reaches the files made before it). None (a document's page count is only
            known by reading it): a file with any rendition is done.
        file_types: The file extensions (lower case, no dot) of the uploads this process is for: the Apex
            upload trigger routes a new file to the process listing its type (kept equal to its table by
            ``tests/core/test_file_types.py``). Empty: Salesforce never starts it on an upload by itself.
        agent_action: Published as an Agentforce action in the AppLink spec (``x-sfdc.agent.action``): for a
            process a person would ask an agent for in words ("make web photos for this listing").
    """

    name: str
    summary: str
    schema: type[Schema]
    handler: str
    from_notification: Callable[[str, NotificationFields], dict[str, Any]]
    skip_reason: Callable[[str | None, Mapping[str, Any]], str | None] = lambda sobject, fields: None
    record_id: Callable[[Mapping[str, Any]], str | None] = lambda payload: None
    result_schema: type[Schema] | None = None
    timeout: int = 600
    file_types: tuple[str, ...] = ()
    file_payload: Callable[[str], dict[str, Any]] | None = None
    calls_per_file: int = 1
    renditions_per_file: Callable[[Settings], int] = lambda settings: 1
    rendition_names: Callable[[Settings], frozenset[str]] | None = None
    agent_action: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", self.name):
            raise ValueError(f"process name {self.name!r} must be lowercase words joined by dashes")
        if any(t != t.lower() or not t.isalnum() for t in self.file_types):
            raise ValueError(f"process {self.name!r}: file types are lower-case extensions without a dot")

    @property
    def queue(self) -> str:
        """Each process has its own queue, so operators can prioritize and scale them apart."""
        return self.name

    @property
    def operation_id(self) -> str:
        """camelCase id for OpenAPI / External Services (``resize-image`` -> ``resizeImage``)."""
        head, *rest = self.name.split("-")
        return head + "".join(word.capitalize() for word in rest)

    def load_handler(self) -> Callable[..., dict[str, Any]]:
        """Import the handler (worker side only)."""
        module_name, _, attr = self.handler.rpartition(".")
        return getattr(importlib.import_module(module_name), attr)


def registry_of(*processes: Process) -> dict[str, Process]:
    """Index process declarations by name; two with one name, or two claiming one file type, is a
    programming error (an upload goes to one process)."""
    registry: dict[str, Process] = {}
    claimed: dict[str, str] = {}
    for process in processes:
        if process.name in registry:
            raise ValueError(f"two process modules declare the name {process.name!r}")
        for file_type in process.file_types:
            if file_type in claimed:
                raise ValueError(f"{claimed[file_type]!r} and {process.name!r} both take .{file_type} uploads")
            claimed[file_type] = process.name
        registry[process.name] = process
    return registry


def routes(processes: Mapping[str, Process]) -> dict[str, str]:
    """File type -> the process an upload of that type goes to (what the Apex upload trigger must route)."""
    return {file_type: p.name for p in processes.values() for file_type in p.file_types}
