"""Tokenizer and recursive-descent parser for the SOQL subset the org emulator understands.

The grammar accepted here (keywords case-insensitive)::

    query      := SELECT selectList FROM object [WHERE cond] [ORDER BY order (',' order)*]
                  [LIMIT int] [OFFSET int]
    selectList := COUNT '(' ')' | field (',' field)*
    field      := ident ('.' ident)*                      -- Parent.Grand.Field
    cond       := unit (AND unit)* | unit (OR unit)*      -- mixing needs parentheses
    unit       := NOT unit | '(' cond ')' | field op value | field LIKE string
                | field [NOT] IN '(' value (',' value)* ')' | field [NOT] IN '(' subSelect ')'
    order      := field [ASC|DESC] [NULLS (FIRST|LAST)]

Anything outside it raises :class:`MalformedQuery` with the message shape Salesforce
uses (``unexpected token: 'GROUP'`` under a caret line and ``ERROR at Row:1:Column:N``).

Sources (SOQL and SOSL Reference, developer.salesforce.com):

* "Logical Operators": *Parentheses are required whenever you mix the operators* (AND, OR,
  NOT), so ``a OR b AND c`` is rejected with ``unexpected token: 'AND'`` instead of being
  given an SQL-style precedence. (The real parser answers ``unexpected token: OR`` for
  ``a AND b OR c``; see salesforce.stackexchange "Unexpected token OR".)
* "Quoted String Escape Sequences": ``\\n \\r \\t \\b \\f \\" \\' \\\\ \\uXXXX`` anywhere,
  ``\\%`` and ``\\_`` only inside a LIKE pattern; *a backslash in any other context is an error*.
* "Reserved Characters"/"Reserved keywords": AND, ASC, DESC, EXCLUDES, FIRST, FROM, GROUP,
  HAVING, IN, INCLUDES, LAST, LIKE, LIMIT, NOT, NULL, NULLS, OR, SELECT, WHERE, WITH can't be
  used as field or object names.
* "ORDER BY": ``ORDER BY field {ASC|DESC} [NULLS {FIRST|LAST}]``.
* Bind variables (``:name``) are Apex-only; over the API Salesforce answers MALFORMED_QUERY
  "Bind variables only allowed in Apex code".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class MalformedQuery(Exception):
    """The query can't be run; ``str(exc)`` is what Salesforce puts in the MALFORMED_QUERY body.

    ``reason`` is the last line alone (e.g. ``unexpected token: 'GROUP'``) for callers and
    tests that don't want the caret excerpt.
    """

    error_code = "MALFORMED_QUERY"

    def __init__(self, reason: str, query: str | None = None, pos: int | None = None):
        self.reason = reason
        self.query = query
        self.pos = pos
        super().__init__(_render(reason, query, pos))


class InvalidType(MalformedQuery):
    """Unknown sObject in FROM: Salesforce answers errorCode INVALID_TYPE, not MALFORMED_QUERY."""

    error_code = "INVALID_TYPE"

    def __init__(self, sobject: str, query: str | None = None, pos: int | None = None):
        self.sobject = sobject
        super().__init__(
            f"sObject type '{sobject}' is not supported. If you are attempting to use a custom object, "
            "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
            "describe call for the appropriate names.",
            query,
            pos,
        )


_NAMES_HINT = "Please reference your WSDL or the describe call for the appropriate names."


class InvalidField(MalformedQuery):
    """A field or relationship the object does not have: errorCode INVALID_FIELD, worded as real orgs answer
    ("No such column 'X' on entity 'Y'. If you are attempting to use a custom field, be sure to append the
    '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate
    names.", quoted verbatim in public captures of REST query errors;
    https://salesforcedictionary.com/errors/invalid-field-no-such-column), with the query excerpt and caret."""

    error_code = "INVALID_FIELD"

    def __init__(self, sobject: str, field: str, query: str | None = None, pos: int | None = None,
                 *, relationship: bool = False):
        self.sobject = sobject
        self.field = field
        if relationship:
            reason = (f"Didn't understand relationship '{field}' in field path. If you are attempting to use a "
                      "custom relationship, be sure to append the '__r' after the custom relationship name. "
                      + _NAMES_HINT)
        else:
            reason = (f"No such column '{field}' on entity '{sobject}'. If you are attempting to use a custom "
                      "field, be sure to append the '__c' after the custom field name. " + _NAMES_HINT)
        super().__init__(reason, query, pos)


def _render(reason: str, query: str | None, pos: int | None) -> str:
    """Salesforce's layout: the offending line, a caret under the column, the position, the reason."""
    if query is None or pos is None:
        return reason
    line_start = query.rfind("\n", 0, pos) + 1
    line_end = query.find("\n", pos)
    line = query[line_start : line_end if line_end != -1 else len(query)]
    row = query.count("\n", 0, pos) + 1
    col = pos - line_start + 1
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{reason}"


RESERVED = frozenset(
    "AND ASC DESC EXCLUDES FIRST FROM GROUP HAVING IN INCLUDES LAST LIKE LIMIT NOT NULL NULLS OR "
    "SELECT WHERE WITH".split()
)


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT, STRING, NUMBER, DATE, DATETIME, OP, EOF
    text: str  # source text (for STRING: the raw body between the quotes)
    pos: int

    def upper(self) -> str:
        return self.text.upper() if self.kind == "IDENT" else ""

    def shown(self) -> str:
        return "<EOF>" if self.kind == "EOF" else self.text if self.kind != "STRING" else f"'{self.text}'"


_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})")
_BAD_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T[\w:.+-]*")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?![\w.])")
_IDENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">", "(", ")", ",", ".")


def tokenize(query: str) -> list[Token]:
    """Split a query into tokens; strings keep their raw body so LIKE can tell ``\\%`` from ``%``."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            j = i + 1
            while j < n and query[j] != "'":
                j += 2 if query[j] == "\\" else 1
            if j >= n:
                raise MalformedQuery(f"unexpected token: '{query[i:]}'", query, i)
            tokens.append(Token("STRING", query[i + 1 : j], i))
            i = j + 1
            continue
        if ch == ":":
            raise MalformedQuery("Bind variables only allowed in Apex code", query, i)
        bad_datetime = _BAD_DATETIME_RE.match(query, i)
        if bad_datetime and not _DATETIME_RE.match(query, i):  # dateTime literals need a time zone
            raise MalformedQuery(f"unexpected token: '{bad_datetime.group()}'", query, i)
        for kind, rx in (("DATETIME", _DATETIME_RE), ("DATE", _DATE_RE), ("NUMBER", _NUMBER_RE)):
            m = rx.match(query, i)
            if m:
                tokens.append(Token(kind, m.group(), i))
                i = m.end()
                break
        else:
            m = _IDENT_RE.match(query, i)
            if m:
                tokens.append(Token("IDENT", m.group(), i))
                i = m.end()
                continue
            op = next((o for o in _OPS if query.startswith(o, i)), None)
            if op is None:
                raise MalformedQuery(f"unexpected token: '{ch}'", query, i)
            tokens.append(Token("OP", op, i))
            i += len(op)
    tokens.append(Token("EOF", "", n))
    return tokens


_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def decode_string(raw: str, *, like: bool = False, query: str | None = None, pos: int | None = None) -> Any:
    """Decode a string literal body.

    Returns a ``str``, or for ``like=True`` a compiled case-insensitive full-match regex in
    which unescaped ``%``/``_`` are wildcards and ``\\%``/``\\_`` are literal.
    """
    out: list[str] = []  # plain text pieces, or regex pieces when like=True
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            if like and ch == "%":
                out.append(".*")
            elif like and ch == "_":
                out.append(".")
            else:
                out.append(re.escape(ch) if like else ch)
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        key = nxt.lower() if nxt.isalpha() else nxt  # \N means \n, \T means \t, ...
        if nxt and key in _SIMPLE_ESCAPES:
            text = _SIMPLE_ESCAPES[key]
            out.append(re.escape(text) if like else text)
            i += 2
        elif like and nxt in ("%", "_"):
            out.append(re.escape(nxt))
            i += 2
        elif nxt in ("u", "U") and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
            text = chr(int(raw[i + 2 : i + 6], 16))
            out.append(re.escape(text) if like else text)
            i += 6
        else:
            raise MalformedQuery(
                f"Invalid string literal '{raw}'. Illegal character sequence '\\{nxt}' in string literal.",
                query,
                pos,
            )
    if like:
        return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
    return "".join(out)


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class FieldPath:
    """``Parent.Grand.Field`` as written; ``parts[-1]`` is the field, the rest are relationships."""

    parts: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, bool, null, date, datetime
    value: Any


@dataclass(frozen=True)
class Compare:
    field: FieldPath
    op: str  # = != < <= > >=   (<> is normalised to !=)
    value: Literal


@dataclass(frozen=True)
class Like:
    field: FieldPath
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class InList:
    field: FieldPath
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class SemiJoin:
    field: FieldPath
    query: Query
    negated: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class OrderItem:
    field: FieldPath
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    text: str
    sobject: str
    sobject_pos: int
    fields: list[FieldPath] = field(default_factory=list)
    count_only: bool = False
    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def is_id_field_name(name: str) -> bool:
    """Id-typed by name: ``Id``, ``...Id`` lookups, or any custom ``__c`` field.

    A generic store has no field metadata, so a custom lookup can't be told from a custom
    text field; semi-joins over a text ``__c`` field simply match nothing.
    """
    return name.lower().endswith("id") or name.lower().endswith("__c")


# --------------------------------------------------------------------------- parser


_COMPARE_OPS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})


def _is_op(tok: Token, op: str) -> bool:
    return tok.kind == "OP" and tok.text == op


class Parser:
    """Recursive descent over :func:`tokenize`'s output; one instance parses one query string."""

    def __init__(self, query: str):
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, tok: Token | None = None) -> MalformedQuery:
        tok = tok or self.tok
        return MalformedQuery(f"unexpected token: '{tok.shown()}'", self.query, tok.pos)

    def at_keyword(self, *words: str) -> bool:
        return self.tok.upper() in words

    def expect_keyword(self, word: str) -> Token:
        if self.tok.upper() != word:
            raise self.error()
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if not (self.tok.kind == "OP" and self.tok.text == op):
            raise self.error()
        return self.advance()

    def at_op(self, op: str) -> bool:
        return _is_op(self.tok, op)

    def name(self) -> Token:
        """An identifier that isn't a reserved word (field, relationship or object name)."""
        if self.tok.kind != "IDENT" or self.tok.upper() in RESERVED:
            raise self.error()
        return self.advance()

    # -- grammar
    def parse(self) -> Query:
        q = self.select(sub=False)
        if self.tok.kind != "EOF":
            raise self.error()
        return q

    def select(self, *, sub: bool) -> Query:
        self.expect_keyword("SELECT")
        fields: list[FieldPath] = []
        count_only = False
        if self.tok.upper() == "COUNT" and _is_op(self.peek(), "(") and _is_op(self.peek(2), ")"):
            if sub:
                raise self.error()
            self.i += 3
            count_only = True
        else:
            fields.append(self.select_item())
            while self.at_op(","):
                comma = self.advance()
                if sub:  # a semi-join sub-select returns exactly one Id column
                    raise self.error(comma)
                fields.append(self.select_item())
        self.check_duplicates(fields)
        self.expect_keyword("FROM")
        obj = self.name()
        q = Query(self.query, obj.text, obj.pos, fields, count_only)
        if self.at_keyword("WHERE"):
            self.advance()
            q.where = self.condition(sub=sub)
        if not sub and self.at_keyword("ORDER") and self.peek().upper() == "BY":
            self.i += 2
            q.order_by.append(self.order_item())
            while self.at_op(","):
                self.advance()
                q.order_by.append(self.order_item())
        if not sub and self.at_keyword("LIMIT"):
            self.advance()
            q.limit = self.integer()
        if not sub and self.at_keyword("OFFSET"):
            self.advance()
            q.offset = self.integer()
        return q

    def select_item(self) -> FieldPath:
        tok = self.tok
        if tok.kind == "IDENT" and _is_op(self.peek(), "("):
            raise self.error()  # aggregate/format/date functions, COUNT() among fields
        if tok.upper() == "TYPEOF" and self.peek().kind == "IDENT":
            raise self.error()
        return self.field_path()

    def check_duplicates(self, fields: list[FieldPath]) -> None:
        seen: set[str] = set()
        for f in fields:
            key = f.text.lower()
            if key in seen:
                raise MalformedQuery(f"duplicate field selected: {f.text}", self.query, f.pos)
            seen.add(key)

    def field_path(self) -> FieldPath:
        first = self.name()
        parts = [first.text]
        while self.at_op("."):
            self.advance()
            parts.append(self.name().text)
        return FieldPath(tuple(parts), first.pos)

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "NUMBER" or not tok.text.isdigit():
            raise self.error()
        self.advance()
        return int(tok.text)

    def order_item(self) -> OrderItem:
        if self.tok.kind == "IDENT" and _is_op(self.peek(), "("):
            raise self.error()
        path = self.field_path()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().upper() == "DESC"
        nulls_first = True  # "By default, null values are sorted first." (ORDER BY reference)
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.error()
            nulls_first = self.advance().upper() == "FIRST"
        return OrderItem(path, descending, nulls_first)

    def condition(self, *, sub: bool) -> Any:
        items = [self.unit(sub=sub)]
        op: str | None = None
        while self.at_keyword("AND", "OR"):
            tok = self.tok
            if op is not None and tok.upper() != op:
                raise self.error()  # mixing AND and OR without parentheses
            op = self.advance().upper()
            items.append(self.unit(sub=sub))
        return items[0] if op is None else BoolOp(op, tuple(items))

    def unit(self, *, sub: bool) -> Any:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.unit(sub=sub))
        if self.at_op("("):
            self.advance()
            inner = self.condition(sub=sub)
            self.expect_op(")")
            return inner
        if self.tok.kind == "IDENT" and _is_op(self.peek(), "("):
            raise self.error()  # date functions, DISTANCE(), ...
        path = self.field_path()
        tok = self.tok
        if tok.kind == "OP" and tok.text in _COMPARE_OPS:
            self.advance()
            return Compare(path, "!=" if tok.text == "<>" else tok.text, self.literal())
        if tok.upper() == "LIKE":
            self.advance()
            s = self.tok
            if s.kind != "STRING":
                raise self.error()
            self.advance()
            return Like(path, decode_string(s.text, like=True, query=self.query, pos=s.pos))
        negated = False
        if tok.upper() == "NOT":
            self.advance()
            negated = True
            if not self.at_keyword("IN"):
                raise self.error()
        if self.at_keyword("IN"):
            self.advance()
            self.expect_op("(")
            if self.at_keyword("SELECT"):
                if sub:
                    raise MalformedQuery(
                        "Nesting of semi join sub-selects is not supported", self.query, self.tok.pos
                    )
                self.check_semi_join_left(path)
                inner = self.select(sub=True)
                self.expect_op(")")
                self.check_semi_join_select(inner)
                return SemiJoin(path, inner, negated)
            values = [self.literal()]
            while self.at_op(","):
                self.advance()
                values.append(self.literal())
            self.expect_op(")")
            return InList(path, tuple(values), negated)
        raise self.error()

    def check_semi_join_left(self, path: FieldPath) -> None:
        """'The left operand must query a single ID (primary key) or reference (foreign key) field.'"""
        if len(path.parts) != 1 or not is_id_field_name(path.parts[0]):
            raise MalformedQuery(
                "semi join sub-selects are only allowed on id or reference fields, "
                f"cannot use: '{path.text}'",
                self.query,
                path.pos,
            )

    def check_semi_join_select(self, inner: Query) -> None:
        f = inner.fields[0]
        if len(f.parts) != 1 or not is_id_field_name(f.parts[0]):
            raise MalformedQuery(
                f"semi join sub selects can only query id fields, cannot use: '{f.text}'", self.query, f.pos
            )

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "STRING":
            self.advance()
            return Literal("string", decode_string(tok.text, query=self.query, pos=tok.pos))
        if tok.kind == "NUMBER":
            self.advance()
            text = tok.text
            return Literal("number", float(text) if "." in text else int(text))
        if tok.kind in ("DATE", "DATETIME"):
            self.advance()
            return Literal(tok.kind.lower(), tok.text)
        if tok.upper() in ("TRUE", "FALSE"):
            self.advance()
            return Literal("bool", tok.upper() == "TRUE")
        if tok.upper() == "NULL":
            self.advance()
            return Literal("null", None)
        raise self.error()  # date literals (TODAY, LAST_N_DAYS:n), field-to-field, ...


def parse(query: str) -> Query:
    """Parse one SOQL query or raise :class:`MalformedQuery`."""
    if not isinstance(query, str) or not query.strip():
        raise MalformedQuery("unexpected token: '<EOF>'")
    return Parser(query).parse()
