"""Settings of one emulated org, including every knob for behaviour we could not verify.

Salesforce documents most of what the emulator does, but some details are
reconstructions (marked "not confirmed by Salesforce's documentation" below).
Each of those is a field here so a test can flip it instead of the emulator
hard-coding a guess. Defaults follow the reference notes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

DEFAULT_ORG_ID = "00D5g000000Xk2PEAS"

#: "You can insert or update blob data using a non-multipart message, but you are limited to
#: 50 MB of text data or 37.5 MB of base64-encoded data." (REST API Developer Guide,
#: "Insert or Update Blob Data", dome_sobject_insert_update_blob.htm). 37.5 MiB of base64
#: characters. Public reports (simple-salesforce#195, SFDX-Data-Move-Utility#569) suggest the
#: real cut-off is the 50 MB request size (a 37 MB *file* passed), so both caps are configurable.
MAX_BASE64_BLOB_CHARS = 39_321_600

#: The request-size cap Salesforce names in its error message: "Maximum size of request
#: reached. Maximum size of request is 52428800 bytes." (errorCode JSON_PARSER_ERROR,
#: quoted in simple-salesforce issue #195 and forcedotcom/SalesforceMobileSDK-iOS#3575).
MAX_JSON_REQUEST_BYTES = 52_428_800

#: Required fields we enforce on create (a schema-less store cannot know the rest).
#: ContentVersion/PathOnClient: fixture rest-error-400-required-field-missing.json.
DEFAULT_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": ("Name",),
    "Contact": ("LastName",),
    "ContentVersion": ("PathOnClient",),
    "ContentDocumentLink": ("ContentDocumentId", "LinkedEntityId"),
}

#: ContentVersion.FileType by lower-case extension. The value set comes from the Metadata API
#: ``FileType`` enum (it lists JPG, JPEG, PNG, GIF, WEBP, AVIF, PDF, TIFF, ..., UNKNOWN);
#: which value a given extension maps to is not confirmed by Salesforce's documentation for anything but the obvious
#: ones
#: ("FileType is defined by either the ContentUrl for links or PathOnClient for documents",
#: ContentVersion object reference). Override per org via ``OrgConfig.file_types``.
DEFAULT_FILE_TYPES: dict[str, str] = {
    "jpg": "JPG",
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "avif": "AVIF",
    "bmp": "BMP",
    "tif": "TIF",
    "tiff": "TIFF",
    "svg": "SVG",
    "pdf": "PDF",
    "txt": "TEXT",
    "csv": "CSV",
    "json": "JSON",
    "xml": "XML",
    "html": "HTML",
    "htm": "HTM",
    "zip": "ZIP",
    "doc": "WORD",
    "docx": "WORD_X",
    "xls": "EXCEL",
    "xlsx": "EXCEL_X",
    "ppt": "POWER_POINT",
    "pptx": "POWER_POINT_X",
    "mp4": "MP4",
    "mov": "MOV",
    "mp3": "MP3",
    "rtf": "RTF",
    "psd": "PSD",
}

#: HTTP status per OAuth ``error`` value. Salesforce usually answers 400; the exact status
#: per error is not confirmed by Salesforce's documentation
#: (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flow_errors.htm), hence a table.
DEFAULT_OAUTH_ERROR_STATUS: dict[str, int] = {
    "invalid_client": 400,
    "invalid_client_id": 400,
    "invalid_grant": 400,
    "unsupported_grant_type": 400,
    "invalid_request": 400,
    "invalid_app_access": 400,
}

#: Audiences a JWT bearer assertion may carry (help remoteaccess_oauth_jwt_flow). The
#: emulator's own base URL is accepted too.
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"
MAX_JWT_LIFETIME_SECONDS = 180
"""A JWT bearer assertion's ``exp`` may be at most 3 minutes ahead
(https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm)."""


def _dev_secret(prefix: str) -> str:
    return prefix + secrets.token_hex(16).upper()


@dataclass
class OrgConfig:
    """Everything that makes one emulated org differ from another.

    Attributes marked "not confirmed" are behaviour Salesforce does not document; they exist so tests
    can exercise both readings.
    """

    org_id: str = DEFAULT_ORG_ID
    client_id: str = field(default_factory=lambda: _dev_secret("3MVG9DEV"))
    client_secret: str = field(default_factory=lambda: _dev_secret(""))
    #: Username of the integration (Run As / JWT) user; the org seeds a User record for it.
    username: str = "integration@offload.example"
    #: Extra usernames that pre-approved the connected app for the JWT bearer flow.
    jwt_usernames: tuple[str, ...] = ()
    #: PEM of the X.509 certificate uploaded to the connected app (JWT bearer flow).
    jwt_cert_pem: str | None = None
    #: Allowed clock skew (seconds) when checking ``exp``. Salesforce's tolerance is not documented.
    jwt_leeway_seconds: int = 0
    #: False reproduces "no client credentials user enabled" (no Run As user on the app).
    client_credentials_enabled: bool = True
    #: Session lifetime. Salesforce's is the run-as user's session timeout, measured from last
    #: activity; the emulator measures from issue (absolute) unless ``token_ttl_sliding``.
    token_ttl_seconds: float = 7200.0
    token_ttl_sliding: bool = False
    api_version: str = "62.0"
    daily_api_limit: int = 100_000
    #: New files and versions the org may publish in a rolling 24 h (``ContentPublicationLimit`` in /limits):
    #: 200,000, or 2,500 on Developer Edition and trials (ContentVersion and ContentDocument object references).
    content_publication_limit: int = 200_000
    max_base64_blob_chars: int = MAX_BASE64_BLOB_CHARS
    max_json_request_bytes: int = MAX_JSON_REQUEST_BYTES
    #: Largest multipart sObject Collections request ("a maximum of 500 MB of data in one request" for
    #: blob inserts, https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_insert_update_blob.htm;
    #: MB read as MiB: not confirmed).
    max_collections_multipart_bytes: int = 500 * 1024 * 1024
    #: Which ``__e`` platform events exist. None: those ``apex/force-app`` deploys (Offload_Job_Event__e), as
    #: in an org where the admin deployed it; any other name is INVALID_TYPE in SOQL, 404 NOT_FOUND in REST.
    platform_events: frozenset[str] | None = None
    #: Which ``__c`` custom objects exist. None: those ``apex/force-app`` deploys. A test that needs an object
    #: of the subscriber org's own (``Property__c``) names it here, with the deployed ones it also needs.
    custom_objects: frozenset[str] | None = None
    #: Extra standard objects the org knows: name -> key prefix.
    extra_sobjects: dict[str, str] = field(default_factory=dict)
    #: Fields known per sObject before any record is written (for ``?fields=`` checks).
    schema: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Reject ``?fields=`` naming a field no record of that type ever had (INVALID_FIELD).
    strict_read_fields: bool = True
    #: The run-as user has "Query All Files": it sees files in other users' personal libraries too.
    query_all_files: bool = False
    #: Reject lookups (FirstPublishLocationId, LinkedEntityId, ...) to records not in the store.
    require_existing_references: bool = True
    required_fields: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_REQUIRED_FIELDS))
    file_types: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FILE_TYPES))
    #: Not confirmed by Salesforce's documentation: besides the FirstPublishLocationId link, Salesforce also links the
    #: file to
    #: its owner (ShareType "I"), as seen when querying ContentDocumentLink after an upload.
    owner_link: bool = True
    oauth_error_status: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_OAUTH_ERROR_STATUS))
    #: A sandbox or scratch org takes ``aud`` = test.salesforce.com, a production org login.salesforce.com
    #: (or, for either, its own URL as an Experience Cloud site would be); never the other one.
    sandbox: bool = False
    #: Extra audiences to accept besides the one the org type takes (empty: exactly Salesforce's).
    jwt_audiences: tuple[str, ...] = ()
    #: Host put in the token response ``id`` URL (fixture: login.salesforce.com).
    identity_host: str = "https://login.salesforce.com"
    #: SOQL query batch size before ``nextRecordsUrl`` paging (REST default 2000).
    query_batch_size: int = 2000
    #: Bulk API 2.0 query jobs: how many job-info polls answer InProgress before one answers JobComplete (0: the
    #: first poll after creation does). Real orgs take as long as the query takes; tests want it deterministic.
    bulk_query_polls_in_progress: int = 0
    #: Records in one set of Bulk API 2.0 query results when the client gives no ``maxRecords``: "the server uses a
    #: default value based on the service" (query_get_job_results.htm); the number is not documented.
    bulk_query_default_max_records: int = 50_000
    #: Bulk API 2.0 query jobs per rolling 24 h ("DailyBulkV2QueryJobs" in /limits: 10,000,
    #: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm).
    bulk_query_daily_jobs: int = 10_000
    #: ``instance_url`` in token responses; None: the emulator's own base URL.
    instance_url: str | None = None

    def known_usernames(self) -> tuple[str, ...]:
        """Usernames the JWT bearer flow accepts as ``sub``."""
        return (self.username, *self.jwt_usernames)
