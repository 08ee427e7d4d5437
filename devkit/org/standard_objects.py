"""The standard fields of the standard objects Offload touches, as Salesforce describes them.

Each object lists its fields with the describe type, length and whether the field is createable or
updateable through the API, from the Object Reference page cited on the object and the Field Reference
(https://developer.salesforce.com/docs/platform/field-reference/references/field-reference/salesforce-field-reference-contentversion.html
and its siblings, which give the types and lengths). Fields only some editions or features have (Division,
CurrencyIsoCode, Experience Cloud ones) are left out: an org without the feature refuses them too.

The lists are complete for ContentVersion, ContentDocument and ContentDocumentLink (what Offload reads and
writes); User and Account carry their commonly used fields, so a rarely used real field (Account.Tradestyle,
User.Extension) is refused here though a real org would take it. Say so in a test's fixture if that bites.

``C`` = createable, ``U`` = updateable (``R`` = neither: Salesforce computes it). System fields
(Id, CreatedDate, ...) are never writable by the integration user: "Set Audit Fields upon Record Creation"
is a permission Offload does not ask for.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    """One field as the emulator enforces it (the subset of a describe ``field`` that matters on write)."""

    name: str
    type: str
    """Describe type: id, string, textarea, url, email, phone, picklist, boolean, reference, int, long,
    double, currency, percent, date, datetime, base64."""
    length: int | None = None
    createable: bool = False
    updateable: bool = False
    label: str = ""
    reference_to: tuple[str, ...] = ()
    """For a reference: the object types it may point to (several: polymorphic; empty: not checked)."""
    restricted_values: tuple[str, ...] = ()
    """For a restricted picklist: the values it takes (anything else is refused)."""
    precision: int | None = None
    scale: int | None = None
    unique: bool = False
    case_sensitive: bool = False
    external_id: bool = False
    custom: bool = False

    @property
    def shown(self) -> str:
        """The name Salesforce puts in error messages: the field label (``ContentVersion ID``)."""
        return self.label or self.name


@dataclass(frozen=True)
class ObjectSchema:
    """One sObject type: its fields by lower-cased name, and what the API allows on it."""

    name: str
    doc_url: str
    fields: dict[str, Field] = field(default_factory=dict)
    createable: bool = True
    updateable: bool = True
    open_custom_fields: bool = False
    """A standard object whose custom fields the subscriber org defines (Account): a ``__c`` field Offload's
    metadata does not declare is taken as the org's own, not refused (the emulator cannot know it)."""
    label: str = ""

    def field(self, name: str) -> Field | None:
        return self.fields.get(name.lower())


def _f(name: str, type_: str, length: int | None = None, access: str = "R", label: str = "",
       refs: tuple[str, ...] = (), values: tuple[str, ...] = ()) -> Field:
    return Field(name=name, type=type_, length=length, createable="C" in access, updateable="U" in access,
                 label=label, reference_to=refs, restricted_values=values)


def system_fields(*, owner: bool = True, audit: bool = True) -> list[Field]:
    """Fields every record has ("System Fields",
    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm)."""
    out = [_f("Id", "id", 18), _f("IsDeleted", "boolean", label="Deleted"), _f("SystemModstamp", "datetime")]
    if audit:
        out += [_f("CreatedDate", "datetime"),
                _f("CreatedById", "reference", 18, label="Created By ID", refs=("User",)),
                _f("LastModifiedDate", "datetime"),
                _f("LastModifiedById", "reference", 18, label="Last Modified By ID", refs=("User",))]
    if owner:
        out.append(_f("OwnerId", "reference", 18, "CU", label="Owner ID", refs=("User", "Group")))
    return out


def _object(name: str, doc: str, fields: list[Field], **kwargs: object) -> ObjectSchema:
    return ObjectSchema(name=name, doc_url=doc, fields={f.name.lower(): f for f in fields}, **kwargs)  # type: ignore[arg-type]


_OBJREF = "https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/"

CONTENT_VERSION = _object("ContentVersion", _OBJREF + "sforce_api_objects_contentversion.htm", [
    *system_fields(),
    _f("Checksum", "string", 50),
    _f("ContentBodyId", "reference", 18, "C", label="Content Body ID"),
    _f("ContentDocumentId", "reference", 18, "C", label="ContentDocument ID", refs=("ContentDocument",)),
    _f("ContentLocation", "picklist", 40, "C"),
    _f("ContentModifiedById", "reference", 18, label="User ID", refs=("User",)),
    _f("ContentModifiedDate", "datetime", None, "C"),
    _f("ContentSize", "int"),
    _f("ContentSizeLong", "long"),
    _f("ContentUrl", "url", 1333, "CU", label="Content URL"),
    _f("Description", "textarea", 1000, "CU"),
    _f("ExternalDataSourceId", "reference", 18, "C", label="External Data Source ID"),
    _f("ExternalDocumentInfo1", "string", 1000, "CU"),
    _f("ExternalDocumentInfo2", "string", 1000, "CU"),
    _f("FeaturedContentBoost", "int"),
    _f("FeaturedContentDate", "date"),
    _f("FileExtension", "string", 40),
    _f("FileType", "string", 20),
    # Polymorphic: a record, a library, a user, a group ("you can't publish into another user's personal library").
    _f("FirstPublishLocationId", "reference", 18, "C", label="First Publish Location ID"),
    _f("IsAssetEnabled", "boolean", None, "C"),
    _f("IsLatest", "boolean"),
    _f("IsMajorVersion", "boolean", None, "C"),
    _f("NegativeRatingCount", "int"),
    _f("NetworkId", "reference", 18, "C"),
    _f("Origin", "picklist", 40, "C", label="Content Origin"),
    _f("PathOnClient", "string", 500, "C", label="Path On Client"),
    _f("PositiveRatingCount", "int"),
    _f("PublishStatus", "picklist", 40),
    _f("RatingCount", "int"),
    _f("ReasonForChange", "string", 255, "CU"),
    _f("SharingOption", "picklist", 40, "CU"),
    _f("SharingPrivacy", "picklist", 40, "CU"),
    _f("TagCsv", "textarea", 2000, "CU"),
    _f("TextPreview", "string", 255),
    _f("Title", "string", 255, "CU"),
    _f("VersionData", "base64", None, "C"),
    _f("VersionDataUrl", "url", 1000),
    _f("VersionNumber", "string", 20),
], updateable=True)

CONTENT_DOCUMENT = _object("ContentDocument", _OBJREF + "sforce_api_objects_contentdocument.htm", [
    *system_fields(),
    _f("ArchivedById", "reference", 18, refs=("User",)),
    _f("ArchivedDate", "date"),
    _f("ContentAssetId", "reference", 18),
    _f("ContentModifiedDate", "datetime"),
    _f("ContentSize", "int"),
    _f("Description", "textarea", 1000, "U"),
    _f("FileExtension", "string", 40),
    _f("FileType", "string", 20),
    _f("IsArchived", "boolean"),
    _f("LastReferencedDate", "datetime"),
    _f("LastViewedDate", "datetime"),
    _f("LatestPublishedVersionId", "reference", 18, label="Latest Published Version ID", refs=("ContentVersion",)),
    _f("ParentId", "reference", 18),
    _f("PublishStatus", "picklist", 40),
    _f("SharingOption", "picklist", 40, "U"),
    _f("SharingPrivacy", "picklist", 40, "U"),
    _f("Title", "string", 255, "U"),
], createable=False, label="Content Document")
"""Supported calls: delete, describeSObjects, query, retrieve, undelete, update: no create (a ContentDocument
comes with its first ContentVersion)."""

CONTENT_DOCUMENT_LINK = _object("ContentDocumentLink", _OBJREF + "sforce_api_objects_contentdocumentlink.htm", [
    # No CreatedDate, CreatedById, LastModified* or OwnerId on this object (field reference).
    *system_fields(owner=False, audit=False),
    _f("ContentDocumentId", "reference", 18, "C", label="ContentDocument ID", refs=("ContentDocument",)),
    _f("LinkedEntityId", "reference", 18, "C", label="Linked Entity ID"),
    # "Restricted picklist": V viewer, C collaborator, I inferred (from the linked record).
    _f("ShareType", "picklist", 40, "CU", label="Share Type", values=("V", "C", "I")),
    _f("Visibility", "picklist", 40, "CU", values=("AllUsers", "InternalUsers", "SharedUsers")),
])

USER = _object("User", _OBJREF + "sforce_api_objects_user.htm", [
    *system_fields(owner=False),
    _f("AboutMe", "textarea", 1000, "CU"),
    _f("AccountId", "reference", 18, label="Account ID", refs=("Account",)),
    _f("Alias", "string", 8, "CU"),
    _f("City", "string", 40, "CU"),
    _f("CommunityNickname", "string", 40, "CU", label="Nickname"),
    _f("CompanyName", "string", 80, "CU", label="Company Name"),
    _f("ContactId", "reference", 18, "C", label="Contact ID", refs=("Contact",)),
    _f("Country", "string", 80, "CU"),
    _f("Department", "string", 80, "CU"),
    _f("Email", "email", 128, "CU"),
    _f("EmailEncodingKey", "picklist", 40, "CU", label="Email Encoding"),
    _f("EmployeeNumber", "string", 20, "CU"),
    _f("FederationIdentifier", "string", 512, "CU", label="SAML Federation ID"),
    _f("FirstName", "string", 40, "CU", label="First Name"),
    _f("FullPhotoUrl", "url", 1024),
    _f("IsActive", "boolean", None, "CU", label="Active"),
    _f("LanguageLocaleKey", "picklist", 40, "CU", label="Language"),
    _f("LastLoginDate", "datetime"),
    _f("LastName", "string", 80, "CU", label="Last Name"),
    _f("LocaleSidKey", "picklist", 40, "CU", label="Locale"),
    _f("ManagerId", "reference", 18, "CU", label="Manager ID", refs=("User",)),
    _f("MobilePhone", "phone", 40, "CU", label="Mobile"),
    _f("Name", "string", 121, label="Full Name"),
    _f("Phone", "phone", 40, "CU"),
    _f("ProfileId", "reference", 18, "CU", label="Profile ID"),
    _f("SmallPhotoUrl", "url", 1024),
    _f("State", "string", 80, "CU"),
    _f("Street", "textarea", 255, "CU"),
    _f("TimeZoneSidKey", "picklist", 40, "CU", label="Time Zone"),
    _f("Title", "string", 80, "CU"),
    _f("Username", "string", 80, "CU"),
    _f("UserRoleId", "reference", 18, "CU", label="Role ID"),
    _f("UserType", "picklist", 40),
], open_custom_fields=True)

_ADDRESS = [
    (prefix + part, typ, length)
    for prefix in ("Billing", "Shipping")
    for part, typ, length in (("Street", "textarea", 255), ("City", "string", 40), ("State", "string", 80),
                              ("PostalCode", "string", 20), ("Country", "string", 80),
                              ("Latitude", "double", None), ("Longitude", "double", None))
]

ACCOUNT = _object("Account", _OBJREF + "sforce_api_objects_account.htm", [
    *system_fields(),
    *(_f(name, typ, length, "CU") for name, typ, length in _ADDRESS),
    _f("AccountNumber", "string", 40, "CU", label="Account Number"),
    _f("AccountSource", "picklist", 255, "CU"),
    _f("AnnualRevenue", "currency", None, "CU"),
    _f("Description", "textarea", 32000, "CU"),
    _f("Fax", "phone", 40, "CU"),
    _f("Industry", "picklist", 255, "CU"),
    _f("Jigsaw", "string", 20, "CU", label="Data.com Key"),
    _f("LastActivityDate", "date"),
    _f("LastReferencedDate", "datetime"),
    _f("LastViewedDate", "datetime"),
    _f("MasterRecordId", "reference", 18, refs=("Account",)),
    _f("Name", "string", 255, "CU", label="Account Name"),
    _f("NumberOfEmployees", "int", None, "CU", label="Employees"),
    _f("Ownership", "picklist", 255, "CU"),
    _f("ParentId", "reference", 18, "CU", label="Parent Account ID", refs=("Account",)),
    _f("Phone", "phone", 40, "CU", label="Account Phone"),
    _f("PhotoUrl", "url", 255),
    _f("Rating", "picklist", 255, "CU", label="Account Rating"),
    _f("Sic", "string", 20, "CU", label="SIC Code"),
    _f("SicDesc", "string", 80, "CU", label="SIC Description"),
    _f("Site", "string", 80, "CU", label="Account Site"),
    _f("TickerSymbol", "string", 20, "CU"),
    _f("Type", "picklist", 255, "CU", label="Account Type"),
    _f("Website", "url", 255, "CU"),
], open_custom_fields=True)
"""No RecordTypeId: an org without Account record types has none ("No such column 'RecordTypeId' on entity
'Account'" in public captures of SOQL errors)."""

STANDARD: dict[str, ObjectSchema] = {
    o.name.lower(): o for o in (CONTENT_VERSION, CONTENT_DOCUMENT, CONTENT_DOCUMENT_LINK, USER, ACCOUNT)
}
"""The standard objects the emulator knows the fields of; any other standard object stays schema-less."""


def custom_object_fields(*, custom_setting: bool = False) -> list[Field]:
    """Standard fields of a custom object: system fields, OwnerId and Name
    (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm);
    a hierarchy custom setting has SetupOwnerId instead of an owner."""
    fields = system_fields(owner=not custom_setting)
    fields += [_f("LastViewedDate", "datetime"), _f("LastReferencedDate", "datetime")]
    if custom_setting:
        fields.append(_f("SetupOwnerId", "reference", 18, "CU", label="Location ID", refs=("User", "Profile",
                                                                                            "Organization")))
    return fields


def platform_event_fields() -> list[Field]:
    """Standard fields of a platform event: ReplayId, EventUuid, CreatedDate, CreatedById, all set by Salesforce
    (https://developer.salesforce.com/docs/atlas.en-us.platform_events.meta/platform_events/platform_events_define_ui.htm)."""
    return [_f("ReplayId", "string", 255), _f("EventUuid", "string", 36, label="Event UUID"),
            _f("CreatedDate", "datetime"), _f("CreatedById", "reference", 18, label="Created By ID", refs=("User",))]
