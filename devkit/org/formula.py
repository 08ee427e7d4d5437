"""Named/External Credential custom-header formulas: parse once, evaluate at callout time, as the org does.

The value of a custom header on a Named or External Credential "is evaluated as a formula" (Help, "Create
and Edit Custom Headers", https://help.salesforce.com/apex/HTViewHelpDoc?id=xcloud.nc_create_custom_headers.htm),
and "Not all Salesforce formula functions are supported for named and external credential custom headers"
(Help, "Use Named Credential Formula Functions in Custom Headers",
https://help.salesforce.com/apex/HTViewHelpDoc?id=xcloud.nc_named_creds_formula_functions.htm). The supported
ones, with their types, are listed in the Named Credentials Developer Guide, "Named Credential Formula
Functions", https://developer.salesforce.com/docs/platform/named-credentials/references/named-credentials-reference/nc-formula-functions.html:

==========================================  =========================  ==========
function                                    input                      output
==========================================  =========================  ==========
``BASE64DECODE(expr)``                      String                     Blob
``BASE64ENCODE(expr)``                      Blob                       String
``BLOB(expr)``                              String (as UTF-8)          Blob
``HASH(algorithm, expr)``                   String, Blob               Blob
``HEX(expr)``                               Blob                       String (base-16 lower case)
``HMAC(algorithm, valueToSign, key)``       String, Blob, Blob         Blob
==========================================  =========================  ==========

"The only supported algorithm is SHA-256" (for HASH and HMAC). ``$Credential.<ExternalCredential>.Body``
"is returned as a BLOB type, rather than as a String" and is the evaluated request body; an authentication
parameter of the principal is ``$Credential.<ExternalCredential>.<Parameter>`` (Help, "Use API Keys in
Custom Headers with Named Credentials",
https://help.salesforce.com/s/articleView?id=xcloud.nc_custom_headers_and_api_keys.htm). ``&`` joins two
Strings (the documented ``BASE64ENCODE(BLOB(a & ':' & b))`` example). A formula holds at most 3,900
characters, and "The maximum number of displayed characters after an evaluation of a formula expression is
1,300, which can truncate access tokens in custom headers" (the Help page above).

This module accepts exactly that subset and nothing else: any other function (``TEXT``, ``NOW``, ``LOWER``),
operator, number, ``$User``/``$Organization`` field, a Blob where a String is expected (or the reverse), or
an algorithm other than ``'SHA-256'`` is a :class:`FormulaError` when the formula is parsed or evaluated,
the way Setup refuses to save a formula it cannot compile. Choices the documentation does not settle are
made strict and named here: function names are case-insensitive (as in every Salesforce formula), merge-field
names are matched exactly; a string literal is in single or double quotes with ``\\`` escaping only ``\\``,
``'`` and ``"``; a header value is either one ``{!formula}`` or plain text without ``{!``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_FORMULA_CHARS = 3_900
"""Longest formula Setup saves (Help, "Use Named Credential Formula Functions in Custom Headers")."""
MAX_RESULT_CHARS = 1_300
"""Characters of an evaluated formula the callout carries; the rest is cut (same page)."""
SUPPORTED_ALGORITHM = "SHA-256"

String = str
Blob = bytes
Value = str | bytes


class FormulaError(ValueError):
    """A header formula the org would refuse: it does not parse, uses an unsupported function or merge field,
    passes the wrong type, or reads a parameter the principal does not have. The message names the part."""


@dataclass(frozen=True)
class Literal:
    value: str


@dataclass(frozen=True)
class MergeField:
    """``$Credential.<credential>.<name>``: ``Body`` or one of the principal's authentication parameters."""

    credential: str
    name: str


@dataclass(frozen=True)
class Call:
    function: str  # upper case
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Concat:
    left: Node
    right: Node


Node = Literal | MergeField | Call | Concat

_SIGNATURES: dict[str, tuple[tuple[type, ...], type]] = {
    "BASE64DECODE": ((str,), bytes),
    "BASE64ENCODE": ((bytes,), str),
    "BLOB": ((str,), bytes),
    "HASH": ((str, bytes), bytes),
    "HEX": ((bytes,), str),
    "HMAC": ((str, bytes, bytes), bytes),
}
_TYPE_NAMES = {str: "String", bytes: "Blob"}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<merge>\$[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),&])
""", re.VERBOSE)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(source: str) -> list[_Token]:
    tokens, at = [], 0
    while at < len(source):
        match = _TOKEN.match(source, at)
        if match is None:
            raise FormulaError(f"Syntax error at character {at + 1} of the formula: {source[at:at + 12]!r} is "
                               "not a string, a $Credential merge field, a function, '(', ')', ',' or '&'.")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), at))
        at = match.end()
    return tokens


def _unquote(text: str, at: int) -> str:
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        char = body[i]
        if char == "\\":
            escaped = body[i + 1]
            if escaped not in "\\'\"":
                raise FormulaError(f"Syntax error at character {at + i + 2}: \\{escaped} is not an escape a "
                                   "formula string knows (only \\\\, \\' and \\\").")
            out.append(escaped)
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


class _Parser:
    """``expr := term ('&' term)*``; ``term := STRING | MERGE | NAME '(' [expr (',' expr)*] ')' | '(' expr ')'``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.i = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, text: str | None = None) -> _Token:
        token = self._peek()
        if token is None:
            raise FormulaError(f"Syntax error: the formula ends where {text or 'a value'!r} is expected.")
        if text is not None and token.text != text:
            raise FormulaError(f"Syntax error at character {token.at + 1}: expected {text!r}, found {token.text!r}.")
        self.i += 1
        return token

    def parse(self) -> Node:
        node = self._expr()
        extra = self._peek()
        if extra is not None:
            raise FormulaError(f"Syntax error at character {extra.at + 1}: unexpected {extra.text!r} after a "
                               "complete expression.")
        return node

    def _expr(self) -> Node:
        node = self._term()
        while (token := self._peek()) is not None and token.text == "&":
            self.i += 1
            node = Concat(node, self._term())
        return node

    def _term(self) -> Node:
        token = self._take()
        if token.kind == "string":
            return Literal(_unquote(token.text, token.at))
        if token.kind == "merge":
            return _merge_field(token)
        if token.text == "(":
            node = self._expr()
            self._take(")")
            return node
        if token.kind == "name":
            function = token.text.upper()
            if function not in _SIGNATURES:
                raise FormulaError(
                    f"Unknown function {token.text}: a named or external credential custom header supports only "
                    f"{', '.join(sorted(_SIGNATURES))} (Named Credential Formula Functions).")
            self._take("(")
            args: list[Node] = []
            if (peek := self._peek()) is not None and peek.text != ")":
                args.append(self._expr())
                while (peek := self._peek()) is not None and peek.text == ",":
                    self.i += 1
                    args.append(self._expr())
            self._take(")")
            wanted = len(_SIGNATURES[function][0])
            if len(args) != wanted:
                raise FormulaError(f"Incorrect number of parameters for function '{function}()'. "
                                   f"Expected {wanted}, received {len(args)}.")
            return Call(function, tuple(args))
        raise FormulaError(f"Syntax error at character {token.at + 1}: unexpected {token.text!r}.")


def _merge_field(token: _Token) -> MergeField:
    parts = token.text[1:].split(".")
    if parts[0] != "Credential" or len(parts) != 3:
        raise FormulaError(f"Field {token.text} does not exist here: a custom header formula reads "
                           "$Credential.<ExternalCredential>.Body or $Credential.<ExternalCredential>.<Parameter>.")
    return MergeField(parts[1], parts[2])


def parse(source: str) -> Node:
    """Parse one formula (the text between ``{!`` and ``}``).

    Raises:
        FormulaError: it is longer than 3,900 characters, or not in the supported subset.
    """
    if len(source) > MAX_FORMULA_CHARS:
        raise FormulaError(f"The formula is {len(source)} characters; a custom header formula holds at most "
                           f"{MAX_FORMULA_CHARS}.")
    if not source.strip():
        raise FormulaError("The formula is empty.")
    return _Parser(source).parse()


@dataclass(frozen=True)
class HeaderValue:
    """A custom header's value: one ``{!formula}`` (``node``), or plain text sent as is (``text``)."""

    source: str
    node: Node | None
    text: str

    @classmethod
    def parse(cls, value: str) -> HeaderValue:
        """Raises FormulaError for a formula outside the subset, or text mixing ``{!...}`` with other text."""
        stripped = value.strip()
        if stripped.startswith("{!") and stripped.endswith("}"):
            return cls(value, parse(stripped[2:-1]), "")
        if "{!" in value:
            raise FormulaError(f"The header value {value!r} mixes text and a formula: write it as one formula, "
                               "e.g. {!'Bearer ' & $Credential.<ExternalCredential>.<Parameter>}.")
        return cls(value, None, value)


@dataclass(frozen=True)
class Context:
    """What a formula can read at callout time: which External Credential it belongs to, the request body
    (as sent: the Named Credentials here keep allowMergeFieldsInBody false) and the principal's parameters."""

    credential: str
    body: bytes
    parameters: Mapping[str, str]


def evaluate(node: Node, context: Context) -> Value:
    """The value of ``node``: a String (``str``) or a Blob (``bytes``).

    Raises:
        FormulaError: a type mismatch, an unsupported algorithm, a merge field of another credential, or a
            parameter the principal does not have.
    """
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, MergeField):
        return _merge_value(node, context)
    if isinstance(node, Concat):
        left, right = evaluate(node.left, context), evaluate(node.right, context)
        if not isinstance(left, str) or not isinstance(right, str):
            raise FormulaError("Incorrect parameter type for operator '&'. Expected Text, received "
                               f"{_TYPE_NAMES[type(left if not isinstance(left, str) else right)]}: "
                               "convert a Blob with HEX() or BASE64ENCODE() first.")
        return left + right
    args = [evaluate(arg, context) for arg in node.args]
    wanted, _ = _SIGNATURES[node.function]
    for position, (arg, kind) in enumerate(zip(args, wanted, strict=True), start=1):
        if not isinstance(arg, kind):
            raise FormulaError(f"Incorrect parameter type for argument {position} of {node.function}(). Expected "
                               f"{_TYPE_NAMES[kind]}, received {_TYPE_NAMES[type(arg)]}.")
    return _FUNCTIONS[node.function](*args)


def _merge_value(node: MergeField, context: Context) -> Value:
    if node.credential != context.credential:
        raise FormulaError(f"$Credential.{node.credential}.{node.name}: this header belongs to the External "
                           f"Credential {context.credential}, whose fields are $Credential.{context.credential}.*.")
    if node.name == "Body":
        return context.body
    if node.name not in context.parameters:
        raise FormulaError(
            f"$Credential.{node.credential}.{node.name} has no value: add an authentication parameter named "
            f"{node.name} to the principal (Setup > Named Credentials > External Credentials > "
            f"{node.credential} > Principals).")
    return context.parameters[node.name]


def _algorithm(name: str) -> None:
    if name != SUPPORTED_ALGORITHM:
        raise FormulaError(f"Unsupported algorithm {name!r}: the only supported algorithm is {SUPPORTED_ALGORITHM}.")


def _hmac(algorithm: str, value: bytes, key: bytes) -> bytes:
    _algorithm(algorithm)
    return hmac.new(key, value, hashlib.sha256).digest()


def _hash(algorithm: str, value: bytes) -> bytes:
    _algorithm(algorithm)
    return hashlib.sha256(value).digest()


def _base64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise FormulaError(f"BASE64DECODE(): {text[:20]!r}... is not Base64 ({exc}).") from None


_FUNCTIONS = {
    "BASE64DECODE": _base64decode,
    "BASE64ENCODE": lambda blob: base64.b64encode(blob).decode("ascii"),
    "BLOB": lambda text: text.encode("utf-8"),
    "HASH": _hash,
    "HEX": lambda blob: blob.hex(),
    "HMAC": _hmac,
}


def header_text(value: HeaderValue, context: Context) -> str:
    """The header as the callout carries it: a String, cut to 1,300 characters.

    Raises:
        FormulaError: evaluating fails, or the formula's value is a Blob (a header is text).
    """
    if value.node is None:
        return value.text
    result = evaluate(value.node, context)
    if not isinstance(result, str):
        raise FormulaError("The formula returns a Blob; a header value is Text: wrap it in HEX() or BASE64ENCODE().")
    return result[:MAX_RESULT_CHARS]
