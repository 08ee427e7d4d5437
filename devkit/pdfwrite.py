"""Writing a PDF file from its objects: what the dev kit's seeded documents, the tests' PDFs and the PDF bench share.

A classic PDF 1.4 file (ISO 32000-1 section 7.5): header, numbered objects, a cross-reference table with each
object's byte offset, a trailer and ``%%EOF``.
"""

from __future__ import annotations

import io


def assemble(objects: list[bytes], trailer: str = "", *, comment: bytes = b"") -> bytes:
    """A PDF file of these objects (numbered from 1; object 1 is the catalog), with ``trailer`` added to the
    trailer's dictionary and ``comment`` as a comment line after the header (readers ignore it; it makes files
    with the same objects differ byte for byte)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    if comment:
        out.write(b"% " + comment + b"\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R {trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
