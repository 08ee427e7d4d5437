"""The org emulator's SOQL engine against a tiny in-memory org (Accounts, Users, Content*)."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.org.soql import InvalidType, MalformedQuery, count, execute, query_response
from services.sfids import checksum


def sfid(prefix: str, n: int) -> str:
    """A valid 18-character Id with mixed case, so the checksum suffix matters."""
    id15 = f"{prefix}Qx00000{n:05d}"
    return id15 + checksum(id15)


def short(id18: str) -> str:
    return id18[:15]


A1, A2, A3, A4 = (sfid("001", n) for n in (1, 2, 3, 4))
U1 = sfid("005", 1)
D1, D2, D3, D4 = (sfid("069", n) for n in (1, 2, 3, 4))
V1, V2, V3, V4, R1, R2 = (sfid("068", n) for n in (1, 2, 3, 4, 5, 6))
L1, L2, L3, L4 = (sfid("06A", n) for n in (1, 2, 3, 4))


def org() -> dict[str, list[dict[str, Any]]]:
    return {
        "Account": [
            {"Id": A1, "Name": "Acme", "Industry": "Tech", "AnnualRevenue": 100, "OwnerId": U1},
            {"Id": A2, "Name": "bolt", "Industry": None, "AnnualRevenue": 50.5, "OwnerId": None},
            {"Id": A3, "Name": "Cog 100%", "Industry": "Energy", "AnnualRevenue": None},
            {"Id": A4, "Name": "O'Brien_Co", "Industry": "tech", "AnnualRevenue": 250, "OwnerId": U1},
        ],
        "User": [{"Id": U1, "Name": "Ada Lovelace"}],
        "ContentDocument": [
            {"Id": D1, "Title": "photo", "FileType": "JPG", "LatestPublishedVersionId": V1, "OwnerId": U1},
            {"Id": D2, "Title": "contract", "FileType": "PDF", "LatestPublishedVersionId": V3, "OwnerId": U1},
            {"Id": D3, "Title": "logo", "FileType": "PNG", "LatestPublishedVersionId": V4, "OwnerId": U1},
            {"Id": D4, "Title": "photo thumb", "FileType": "WEBP", "LatestPublishedVersionId": R1},
        ],
        "ContentVersion": [
            _cv(V1, D1, "JPG", True, A1, 1000, "2024-03-01T10:00:00.000+0000"),
            _cv(V2, D1, "JPG", False, A1, 900, "2024-02-01T10:00:00.000+0000"),
            _cv(V3, D2, "PDF", True, A1, 5000, "2024-01-15T00:00:00.000+0000"),
            _cv(V4, D3, "PNG", True, A2, 300, "2023-12-31T23:30:00.000+0000"),
            {**_cv(R1, D4, "WEBP", True, None, 40, "2024-03-02T00:00:00.000+0000"),
             "Offload_Rendition_Of__c": V1, "Offload_Variant__c": "thumb"},
            {**_cv(R2, None, "WEBP", True, None, 80, "2024-03-02T00:00:00.000+0000"),
             "Offload_Rendition_Of__c": V1, "Offload_Variant__c": "medium"},
        ],
        "ContentDocumentLink": [
            {"Id": L1, "ContentDocumentId": D1, "LinkedEntityId": A1, "ShareType": "V"},
            {"Id": L2, "ContentDocumentId": D2, "LinkedEntityId": A1, "ShareType": "I"},
            {"Id": L3, "ContentDocumentId": D3, "LinkedEntityId": A2, "ShareType": "V"},
            {"Id": L4, "ContentDocumentId": D1, "LinkedEntityId": U1, "ShareType": "I"},
        ],
    }


def _cv(vid: str, doc: str | None, ftype: str, latest: bool, fpl: str | None, size: int,
        created: str) -> dict:
    ext = ftype.lower()
    return {"Id": vid, "ContentDocumentId": doc, "FileType": ftype, "IsLatest": latest,
            "FirstPublishLocationId": fpl, "FileExtension": ext, "ContentSize": size,
            "Title": f"file-{ext}", "CreatedDate": created}


class DictSource:
    """RecordSource over a dict of lists; unknown types raise KeyError like the contract says."""

    def __init__(self, data: dict[str, list[dict[str, Any]]]):
        self.data = data
        self.calls: list[str] = []

    def all_records(self, sobject: str) -> list[dict]:
        self.calls.append(sobject)
        for name, rows in self.data.items():
            if name.lower() == sobject.lower():
                return [dict(r) for r in rows]
        raise KeyError(sobject)

    def get_record(self, record_id: str) -> tuple[str, dict] | None:
        for name, rows in self.data.items():
            for row in rows:
                if row["Id"][:15] == record_id[:15]:
                    return name, dict(row)
        return None


@pytest.fixture
def src() -> DictSource:
    return DictSource(org())


def ids(query: str, source: DictSource) -> list[str]:
    return [r["Id"] for r in execute(query, source)]


def names(query: str, source: DictSource) -> list[str]:
    return [r["Name"] for r in execute(query, source)]


def reason(query: str, source: DictSource) -> str:
    with pytest.raises(MalformedQuery) as info:
        execute(query, source)
    return info.value.reason


# --------------------------------------------------------------------------- Offload's own queries


def test_worker_image_query_returns_latest_images_linked_to_the_record(src):
    q = ("SELECT Id, ContentDocumentId, FirstPublishLocationId, FileExtension, ContentSize, Title "
         "FROM ContentVersion WHERE ContentDocumentId IN (SELECT ContentDocumentId FROM ContentDocumentLink "
         f"WHERE LinkedEntityId = '{short(A1)}') AND IsLatest = true "
         "AND FileType IN ('JPG','JPEG','PNG','GIF','WEBP','TIFF','HEIC')")
    assert execute(q, src) == [{
        "attributes": {"type": "ContentVersion", "url": f"/services/data/v62.0/sobjects/ContentVersion/{V1}"},
        "Id": V1, "ContentDocumentId": D1, "FirstPublishLocationId": A1, "FileExtension": "jpg",
        "ContentSize": 1000, "Title": "file-jpg",
    }]
    assert list(execute(q, src)[0]) == ["attributes", "Id", "ContentDocumentId", "FirstPublishLocationId",
                                        "FileExtension", "ContentSize", "Title"]


def test_worker_rendition_lookup_by_15_char_id(src):
    template = ("SELECT Id FROM ContentVersion WHERE Offload_Rendition_Of__c = '{}' "
                "AND Offload_Variant__c = 'thumb'")
    assert ids(template.format(short(V1)), src) == [R1]
    assert ids(template.format(V1), src) == [R1]


def test_api_version_in_attributes_url(src):
    rec = execute(f"SELECT Id FROM Account WHERE Id = '{A1}'", src, api_version="59.0")[0]
    assert rec["attributes"] == {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{A1}"}


# --------------------------------------------------------------------------- Ids


def test_15_char_literal_equals_18_char_id(src):
    assert ids(f"SELECT Id FROM Account WHERE Id = '{short(A2)}'", src) == [A2]
    assert ids(f"SELECT Id FROM Account WHERE OwnerId = '{short(U1)}'", src) == [A1, A4]
    assert ids(f"SELECT Id FROM Account WHERE Id IN ('{short(A1)}', '{A3}')", src) == [A1, A3]
    assert ids(f"SELECT Id FROM Account WHERE Id != '{short(A1)}'", src) == [A2, A3, A4]


def test_15_char_ids_are_case_sensitive(src):
    wrong_case = short(A1).lower()
    assert ids(f"SELECT Id FROM Account WHERE Id = '{wrong_case}'", src) == []


# --------------------------------------------------------------------------- comparison operators


@pytest.mark.parametrize(("where", "expected"), [
    ("AnnualRevenue = 100", ["Acme"]),
    ("AnnualRevenue != 100", ["bolt", "Cog 100%", "O'Brien_Co"]),
    ("AnnualRevenue <> 100", ["bolt", "Cog 100%", "O'Brien_Co"]),
    ("AnnualRevenue < 100", ["bolt"]),
    ("AnnualRevenue <= 100", ["Acme", "bolt"]),
    ("AnnualRevenue > 100", ["O'Brien_Co"]),
    ("AnnualRevenue >= 50.5", ["Acme", "bolt", "O'Brien_Co"]),
    ("AnnualRevenue > -1", ["Acme", "bolt", "O'Brien_Co"]),
    ("Name = 'ACME'", ["Acme"]),
    ("Name < 'b'", ["Acme"]),
    ("Industry = 'TECH'", ["Acme", "O'Brien_Co"]),
    ("Industry = null", ["bolt"]),
    ("Industry != null", ["Acme", "Cog 100%", "O'Brien_Co"]),
    ("Industry != 'Tech'", ["bolt", "Cog 100%"]),
    ("Industry IN ('Energy', 'tech')", ["Acme", "Cog 100%", "O'Brien_Co"]),
    ("Industry NOT IN ('Energy')", ["Acme", "bolt", "O'Brien_Co"]),
    ("Industry IN ('Energy', null)", ["bolt", "Cog 100%"]),
    ("Unknown__c = null", ["Acme", "bolt", "Cog 100%", "O'Brien_Co"]),
])
def test_comparison_operators(src, where, expected):
    assert names(f"SELECT Name FROM Account WHERE {where}", src) == expected


def test_boolean_literals(src):
    assert ids("SELECT Id FROM ContentVersion WHERE IsLatest = FALSE", src) == [V2]
    assert len(ids("SELECT Id FROM ContentVersion WHERE IsLatest = true", src)) == 5


@pytest.mark.parametrize(("where", "expected"), [
    ("CreatedDate > 2024-03-01T00:00:00Z", [V1, R1, R2]),
    ("CreatedDate >= 2024-03-01T10:00:00Z", [V1, R1, R2]),
    ("CreatedDate < 2024-01-01T00:00:00Z", [V4]),
    ("CreatedDate < 2024-01-01T00:00:00+01:00", []),
    ("CreatedDate = 2024-01-15T00:00:00.000Z", [V3]),
    ("CreatedDate > 2024-03-01", [R1, R2]),
])
def test_datetime_literals(src, where, expected):
    assert ids(f"SELECT Id FROM ContentVersion WHERE {where}", src) == expected


# --------------------------------------------------------------------------- LIKE and string escapes


@pytest.mark.parametrize(("pattern", "expected"), [
    ("ac%", ["Acme"]),
    ("%O%", ["bolt", "Cog 100%", "O'Brien_Co"]),
    ("_olt", ["bolt"]),
    ("B_LT", ["bolt"]),
    ("acm", []),
    ("%100\\%", ["Cog 100%"]),
    ("%\\%%", ["Cog 100%"]),
    ("O\\'Brien\\_%", ["O'Brien_Co"]),
    ("%n_co", ["O'Brien_Co"]),
    ("%n\\_co", ["O'Brien_Co"]),
    ("%.%", []),
])
def test_like(src, pattern, expected):
    assert names(f"SELECT Name FROM Account WHERE Name LIKE '{pattern}'", src) == expected


def test_like_never_matches_null(src):
    q = "SELECT Name FROM Account WHERE Industry LIKE '%'"
    assert names(q, src) == ["Acme", "Cog 100%", "O'Brien_Co"]


def test_string_escapes(src):
    assert names("SELECT Name FROM Account WHERE Name = 'O\\'Brien_Co'", src) == ["O'Brien_Co"]
    src.data["Account"][1]["Name"] = 'a\\b\n"c"\té'
    q = "SELECT Name FROM Account WHERE Name = 'a\\\\b\\n\\\"c\\\"\\T\\u00e9'"
    assert names(q, src) == ['a\\b\n"c"\té']


def test_wildcard_escapes_only_inside_like(src):
    assert "Illegal character sequence '\\%'" in reason("SELECT Id FROM Account WHERE Name = '100\\%'", src)


# --------------------------------------------------------------------------- AND / OR / NOT


def test_and_or_not_and_parentheses(src):
    base = "SELECT Name FROM Account WHERE "
    assert names(base + "Industry = 'tech' AND AnnualRevenue > 100", src) == ["O'Brien_Co"]
    assert names(base + "Name = 'bolt' OR Name = 'Acme' OR Name = 'x'", src) == ["Acme", "bolt"]
    assert names(base + "Name = 'bolt' OR (Name = 'Acme' AND AnnualRevenue > 1000)", src) == ["bolt"]
    assert names(base + "(Name = 'bolt' OR Name = 'Acme') AND AnnualRevenue > 60", src) == ["Acme"]
    assert names(base + "NOT Name = 'Acme'", src) == ["bolt", "Cog 100%", "O'Brien_Co"]
    assert names(base + "NOT (Name = 'Acme' OR Industry = null)", src) == ["Cog 100%", "O'Brien_Co"]
    assert names(base + "(NOT Name LIKE 'a%') AND AnnualRevenue > 0", src) == ["bolt", "O'Brien_Co"]
    assert names(base + "((Name = 'bolt'))", src) == ["bolt"]


@pytest.mark.parametrize(("where", "token"), [
    ("Name = 'a' OR Name = 'b' AND Name = 'c'", "AND"),
    ("Name = 'a' AND Name = 'b' OR Name = 'c'", "OR"),
    ("(Name = 'a' OR Name = 'b') AND Name = 'c' OR Name = 'd'", "OR"),
])
def test_mixing_and_or_needs_parentheses(src, where, token):
    """Logical Operators: "Parentheses are required whenever you mix the operators"."""
    assert reason(f"SELECT Id FROM Account WHERE {where}", src) == f"unexpected token: '{token}'"


# --------------------------------------------------------------------------- semi-joins and anti-joins


def test_semi_join_on_id(src):
    q = ("SELECT Name FROM Account WHERE Id IN (SELECT LinkedEntityId FROM ContentDocumentLink "
         f"WHERE ContentDocumentId = '{short(D1)}')")
    assert names(q, src) == ["Acme"]


def test_anti_join(src):
    q = "SELECT Name FROM Account WHERE Id NOT IN (SELECT LinkedEntityId FROM ContentDocumentLink)"
    assert names(q, src) == ["Cog 100%", "O'Brien_Co"]


def test_semi_join_on_reference_field_combined_with_other_filters(src):
    q = ("SELECT Id FROM ContentVersion WHERE ContentDocumentId IN (SELECT ContentDocumentId FROM "
         f"ContentDocumentLink WHERE LinkedEntityId = '{A1}' AND ShareType = 'V') AND IsLatest = true")
    assert ids(q, src) == [V1]
    anti = ("SELECT Id FROM ContentVersion WHERE ContentDocumentId NOT IN (SELECT ContentDocumentId FROM "
            f"ContentDocumentLink WHERE LinkedEntityId = '{A1}')")
    assert ids(anti, src) == [V4, R1, R2]


def test_semi_join_with_relationship_filter_inside(src):
    q = ("SELECT Name FROM Account WHERE Id IN (SELECT LinkedEntityId FROM ContentDocumentLink "
         "WHERE ContentDocument.FileType = 'png')")
    assert names(q, src) == ["bolt"]


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT Id FROM Account WHERE Id IN (SELECT Id, LinkedEntityId FROM ContentDocumentLink)",
     "unexpected token: ','"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT ShareType FROM ContentDocumentLink)",
     "semi join sub selects can only query id fields, cannot use: 'ShareType'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT ContentDocument.OwnerId FROM ContentDocumentLink)",
     "semi join sub selects can only query id fields, cannot use: 'ContentDocument.OwnerId'"),
    ("SELECT Id FROM Account WHERE Name IN (SELECT LinkedEntityId FROM ContentDocumentLink)",
     "semi join sub-selects are only allowed on id or reference fields, cannot use: 'Name'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT COUNT() FROM ContentDocumentLink)",
     "unexpected token: 'COUNT'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT LinkedEntityId FROM ContentDocumentLink ORDER BY Id)",
     "unexpected token: 'ORDER'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT LinkedEntityId FROM ContentDocumentLink LIMIT 1)",
     "unexpected token: 'LIMIT'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT LinkedEntityId FROM ContentDocumentLink WHERE "
     "ContentDocumentId IN (SELECT Id FROM ContentDocument))",
     "Nesting of semi join sub-selects is not supported"),
])
def test_semi_join_restrictions(src, query, expected):
    assert reason(query, src) == expected


# --------------------------------------------------------------------------- relationship fields


def test_parent_fields_nest_like_salesforce(src):
    q = (f"SELECT Id, ContentDocument.LatestPublishedVersionId, ContentDocument.Owner.Name, "
         f"contentdocument.title FROM ContentVersion WHERE Id IN ('{V1}', '{R2}') ORDER BY ContentSize DESC")
    first, second = execute(q, src)
    assert first == {
        "attributes": {"type": "ContentVersion", "url": f"/services/data/v62.0/sobjects/ContentVersion/{V1}"},
        "Id": V1,
        "ContentDocument": {
            "attributes": {"type": "ContentDocument",
                           "url": f"/services/data/v62.0/sobjects/ContentDocument/{D1}"},
            "LatestPublishedVersionId": V1,
            "Owner": {"attributes": {"type": "User", "url": f"/services/data/v62.0/sobjects/User/{U1}"},
                      "Name": "Ada Lovelace"},
            "Title": "photo",
        },
    }
    assert second["ContentDocument"] is None  # R2 has no ContentDocumentId


def test_parent_chain_with_null_middle_link(src):
    rec = execute(f"SELECT ContentDocument.Owner.Name FROM ContentVersion WHERE Id = '{R1}'", src)[0]
    assert rec["ContentDocument"]["Owner"] is None


def test_custom_lookup_relationship_uses_r_suffix(src):
    rec = execute(f"SELECT Offload_Rendition_Of__r.FileType FROM ContentVersion WHERE Id = '{R1}'", src)[0]
    assert rec["Offload_Rendition_Of__r"]["FileType"] == "JPG"
    assert rec["Offload_Rendition_Of__r"]["attributes"]["type"] == "ContentVersion"


def test_relationship_fields_in_where(src):
    assert ids("SELECT Id FROM ContentVersion WHERE ContentDocument.FileType = 'JPG'", src) == [V1, V2]
    assert names("SELECT Name FROM Account WHERE Owner.Name LIKE 'ada%'", src) == ["Acme", "O'Brien_Co"]
    # "WHERE Contact.LastName = null" matches records without a parent (API 13.0+).
    assert names("SELECT Name FROM Account WHERE Owner.Name = null", src) == ["bolt", "Cog 100%"]
    assert ids("SELECT Id FROM ContentDocumentLink WHERE LinkedEntity.Name = 'Acme'", src) == [L1, L2]
    q = f"SELECT Id FROM ContentVersion WHERE Offload_Rendition_Of__r.Id = '{short(V1)}'"
    assert ids(q, src) == [R1, R2]


# --------------------------------------------------------------------------- case-insensitivity, output keys


def test_keywords_objects_and_fields_are_case_insensitive(src):
    q = f"select name, ANNUALREVENUE, notAField from account where ID = '{A1}' order by NAME asc"
    out = execute(q, src)
    assert out == [{"attributes": {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{A1}"},
                    "Name": "Acme", "AnnualRevenue": 100, "notAField": None}]


def test_canonical_type_comes_from_the_source(src):
    rec = execute(f"SELECT Id FROM contentversion WHERE Id = '{V1}'", src)[0]
    assert rec["attributes"]["type"] == "ContentVersion"
    assert src.calls[-1] == "contentversion"  # asked with the name as written


def test_catalog_hook_gives_canonical_type_and_invalid_type(src):
    class Catalog:
        def resolve(self, name: str) -> str | None:
            return {"account": "Account"}.get(name.lower())

    src.catalog = Catalog()  # type: ignore[attr-defined]
    assert execute(f"SELECT Id FROM ACCOUNT WHERE Id = '{A1}'", src)[0]["attributes"]["type"] == "Account"
    with pytest.raises(InvalidType):
        execute("SELECT Id FROM ContentVersion", src)


# --------------------------------------------------------------------------- ORDER BY / LIMIT / OFFSET


@pytest.mark.parametrize(("order", "expected"), [
    ("Industry", ["bolt", "Cog 100%", "Acme", "O'Brien_Co"]),
    ("Industry ASC NULLS LAST", ["Cog 100%", "Acme", "O'Brien_Co", "bolt"]),
    ("Industry DESC", ["bolt", "Acme", "O'Brien_Co", "Cog 100%"]),
    ("Industry DESC NULLS LAST", ["Acme", "O'Brien_Co", "Cog 100%", "bolt"]),
    ("Industry DESC NULLS FIRST, Name DESC", ["bolt", "O'Brien_Co", "Acme", "Cog 100%"]),
    ("Name", ["Acme", "bolt", "Cog 100%", "O'Brien_Co"]),
    ("Name DESC", ["O'Brien_Co", "Cog 100%", "bolt", "Acme"]),
    ("AnnualRevenue DESC NULLS LAST", ["O'Brien_Co", "Acme", "bolt", "Cog 100%"]),
    ("Owner.Name NULLS LAST, Name DESC", ["O'Brien_Co", "Acme", "Cog 100%", "bolt"]),
])
def test_order_by(src, order, expected):
    assert names(f"SELECT Name FROM Account ORDER BY {order}", src) == expected


def test_limit_and_offset(src):
    base = "SELECT Name FROM Account ORDER BY Name"
    assert names(base + " LIMIT 2", src) == ["Acme", "bolt"]
    assert names(base + " LIMIT 2 OFFSET 1", src) == ["bolt", "Cog 100%"]
    assert names(base + " OFFSET 3", src) == ["O'Brien_Co"]
    assert names(base + " LIMIT 0", src) == []
    assert names(base + " OFFSET 10", src) == []


# --------------------------------------------------------------------------- COUNT()


def test_count(src):
    q = "SELECT COUNT() FROM ContentVersion WHERE IsLatest = true"
    assert count(q, src) == 5
    assert execute(q, src) == []
    assert query_response(q, src) == {"totalSize": 5, "done": True, "records": []}
    assert count("select count() from Account limit 3", src) == 3
    assert count("SELECT Id FROM Account", src) is None


def test_query_response_for_records(src):
    body = query_response("SELECT Id FROM Account LIMIT 2", src)
    assert body["totalSize"] == 2 and body["done"] is True and len(body["records"]) == 2


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT Industry FROM Account GROUP BY Industry", "unexpected token: 'GROUP'"),
    ("SELECT COUNT(Id) FROM Account", "unexpected token: 'COUNT'"),
    ("SELECT MAX(AnnualRevenue) FROM Account", "unexpected token: 'MAX'"),
    ("SELECT Id, COUNT() FROM Account", "unexpected token: 'COUNT'"),
    ("SELECT toLabel(Industry) FROM Account", "unexpected token: 'toLabel'"),
    ("SELECT TYPEOF Owner WHEN User THEN Name END FROM Account", "unexpected token: 'TYPEOF'"),
    ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "unexpected token: '('"),
    ("SELECT Id FROM Account FOR UPDATE", "unexpected token: 'FOR'"),
    ("SELECT Id FROM Account WITH SECURITY_ENFORCED", "unexpected token: 'WITH'"),
    ("SELECT Id FROM Account USING SCOPE mine", "unexpected token: 'USING'"),
    ("SELECT Id FROM Account a", "unexpected token: 'a'"),
    ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2024", "unexpected token: 'CALENDAR_YEAR'"),
    ("SELECT Id FROM Account WHERE CreatedDate = TODAY", "unexpected token: 'TODAY'"),
    ("SELECT Id FROM Account WHERE Name = :name", "Bind variables only allowed in Apex code"),
    ("SELECT * FROM Account", "unexpected token: '*'"),
    ("SELECT Id Account", "unexpected token: 'Account'"),
    ("SELECT Id FROM", "unexpected token: '<EOF>'"),
    ("SELECT FROM Account", "unexpected token: 'FROM'"),
    ("SELECT Id, FROM Account", "unexpected token: 'FROM'"),
    ("SELECT Id FROM Account WHERE", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WHERE Name", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WHERE Name = \"x\"", "unexpected token: '\"'"),
    ("SELECT Id FROM Account WHERE Name = 'x", "unexpected token: ''x'"),
    ("SELECT Id FROM Account WHERE Name LIKE 5", "unexpected token: '5'"),
    ("SELECT Id FROM Account WHERE Name NOT LIKE 'x'", "unexpected token: 'LIKE'"),
    ("SELECT Id FROM Account WHERE Name IN 'x'", "unexpected token: ''x''"),
    ("SELECT Id FROM Account WHERE Name IN ()", "unexpected token: ')'"),
    ("SELECT Id FROM Account WHERE Name = ('x')", "unexpected token: '('"),
    ("SELECT Id FROM Account WHERE Tags__c INCLUDES ('a')", "unexpected token: 'INCLUDES'"),
    ("SELECT Id FROM Account WHERE Name = Industry", "unexpected token: 'Industry'"),
    ("SELECT Id FROM Account WHERE (Name = 'x'", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account ORDER BY Name LIMIT -1", "unexpected token: '-1'"),
    ("SELECT Id FROM Account LIMIT 1.5", "unexpected token: '1.5'"),
    ("SELECT Id FROM Account OFFSET 1 LIMIT 1", "unexpected token: 'LIMIT'"),
    ("SELECT Id FROM Account ORDER BY Name NULLS", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account ORDER Name", "unexpected token: 'ORDER'"),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T00:00:00",
     "unexpected token: '2024-01-01T00:00:00'"),
    ("SELECT Id, Group FROM Account", "unexpected token: 'Group'"),
    ("SELECT Id, Name, name FROM Account", "duplicate field selected: name"),
    ("SELECT Id FROM Account WHERE Name = 'a\\qb'",
     "Invalid string literal 'a\\qb'. Illegal character sequence '\\q' in string literal."),
    ("UPDATE Account SET Name = 'x'", "unexpected token: 'UPDATE'"),
    ("   ", "unexpected token: '<EOF>'"),
])
def test_malformed_queries(src, query, expected):
    assert reason(query, src) == expected


def test_malformed_message_has_salesforce_layout(src):
    with pytest.raises(MalformedQuery) as info:
        execute("SELECT Id\nFROM Account\nGROUP BY Id", src)
    assert str(info.value) == "\nGROUP BY Id\n^\nERROR at Row:3:Column:1\nunexpected token: 'GROUP'"
    assert info.value.error_code == "MALFORMED_QUERY"


def test_unknown_object_is_invalid_type(src):
    with pytest.raises(InvalidType) as info:
        execute("SELECT Id FROM Foo WHERE Name = 'x'", src)
    err = info.value
    assert isinstance(err, MalformedQuery) and err.error_code == "INVALID_TYPE"
    assert err.reason.startswith("sObject type 'Foo' is not supported.")
    assert "ERROR at Row:1:Column:16" in str(err)


def test_unknown_object_in_sub_select_is_invalid_type(src):
    with pytest.raises(InvalidType, match="sObject type 'Nope__c' is not supported"):
        execute("SELECT Id FROM Account WHERE Id IN (SELECT ParentId FROM Nope__c)", src)


def test_count_on_unknown_object_is_invalid_type(src):
    with pytest.raises(InvalidType):
        count("SELECT COUNT() FROM Foo", src)
