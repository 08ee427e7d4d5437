"""PDFs made inside the tests: honest ones and hostile ones, written as PDF text (no binary fixtures).

:func:`minimal_pdf` writes a classic PDF 1.4 file (ISO 32000-1 section 7.5: header, objects, a
cross-reference table with each object's byte offset, trailer, ``%%EOF``) whose pages all share one vector
content stream, so a 10,000-page file is about a megabyte and is written in milliseconds. With
``user_password`` it is encrypted with the standard security handler, revision 2 (RC4, 40-bit key:
ISO 32000-1 section 7.6.3, algorithms 1, 2, 3 and 4), so a reader needs the password to open it.
"""

from __future__ import annotations

import hashlib
import io

from devkit.pdfwrite import assemble

# ISO 32000-1, 7.6.3.3, algorithm 2, step (a): the padding string.
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
FILE_ID = hashlib.md5(b"offload test pdf").digest()

FLOOR_PLAN = (b"1 w 0 0 0 RG 40 40 515 762 re S 40 400 m 555 400 l S 300 40 m 300 400 l S "
              b"0.8 0.9 1 rg 60 60 220 320 re f 0.9 0.8 0.7 rg 320 60 215 320 re f")
"""A page of lines and filled rooms in a 595 x 842 pt (A4) coordinate space."""


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4, the cipher of the standard security handler's revision 2 (kept here: it is not in hashlib)."""
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def _padded(password: bytes) -> bytes:
    return (password + PAD)[:32]


def _security(user_password: bytes, owner_password: bytes, permissions: int) -> tuple[bytes, bytes, bytes]:
    """(O, U, file key) for revision 2: algorithms 3, 2 and 4 of ISO 32000-1 7.6.3."""
    owner_key = hashlib.md5(_padded(owner_password or user_password)).digest()[:5]
    o_value = rc4(owner_key, _padded(user_password))
    key = hashlib.md5(_padded(user_password) + o_value + permissions.to_bytes(4, "little", signed=True)
                      + FILE_ID).digest()[:5]
    return o_value, rc4(key, PAD), key


def _object_key(key: bytes, number: int) -> bytes:
    """Algorithm 1: the key for one object's strings and streams (generation 0)."""
    return hashlib.md5(key + number.to_bytes(3, "little") + b"\x00\x00").digest()[: len(key) + 5]


def minimal_pdf(pages: int = 1, *, media_box: tuple[float, float, float, float] = (0, 0, 595, 842),
                content: bytes = FLOOR_PLAN, rotate: int = 0, user_password: str | None = None,
                owner_password: str | None = None, declared_count: int | None = None) -> bytes:
    """A valid PDF of ``pages`` pages sharing one content stream.

    ``declared_count`` writes another ``/Count`` in the page tree than there are pages (a lying file).
    ``user_password`` / ``owner_password`` encrypt it (an owner password alone restricts printing, not opening).
    """
    box = " ".join(f"{v:g}" for v in media_box)
    objects: list[bytes] = []  # object n is objects[n - 1]
    first_page = 4
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {declared_count or pages} >>".encode())
    encrypt = None
    stream = content
    if user_password is not None or owner_password is not None:
        permissions = -3904 if owner_password else -4  # owner only: printing and copying denied
        o_value, u_value, key = _security((user_password or "").encode(), (owner_password or "").encode(),
                                          permissions)
        stream = rc4(_object_key(key, 3), content)
        encrypt = (f"<< /Filter /Standard /V 1 /R 2 /Length 40 /O <{o_value.hex()}> /U <{u_value.hex()}> "
                   f"/P {permissions} >>").encode()
    objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    rotation = f" /Rotate {rotate}" if rotate else ""
    page = f"<< /Type /Page /Parent 2 0 R /MediaBox [{box}] /Contents 3 0 R /Resources << >>{rotation} >>".encode()
    objects.extend(page for _ in range(pages))
    if encrypt is not None:
        objects.append(encrypt)
    trailer = f"/ID [<{FILE_ID.hex()}> <{FILE_ID.hex()}>]"
    if encrypt is not None:
        trailer += f" /Encrypt {len(objects)} 0 R"
    return assemble(objects, trailer)


def floor_plan_pdf(pages: int = 2) -> bytes:
    """A small multi-page floor plan drawn with Pillow and saved as a PDF (raster pages, as a scan would be)."""
    from PIL import Image, ImageDraw

    images = []
    for number in range(1, pages + 1):
        image = Image.new("RGB", (620, 877), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle((30, 30, 590, 847), outline="black", width=4)
        draw.line((30, 420, 590, 420), fill="black", width=3)
        draw.line((310, 30, 310, 420), fill="black", width=3)
        draw.rectangle((50, 50, 290, 400), fill=(205, 225, 255))
        draw.text((60, 60), f"Level {number}", fill="black")
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=75)
    return buffer.getvalue()
