"""Benchmark: workers.pdf.render_pages against naive full-size rendering, on one core, in the same run.

    .venv/bin/python bench/pdf_preview.py            # 3 rounds x (1 warm-up + 3 timed) per method
    .venv/bin/python bench/pdf_preview.py --quick    # 1 round x (1 warm-up + 1 timed)

The document is generated in a temp dir (never committed): a 10-page A4 brochure, each page a different
photo (a 1600 x 1067 JPEG embedded as a DCTDecode image, as layout programs embed them), a heading and
body text in Helvetica, and vector rules and boxes. Both methods make one 1600 px JPEG (q85) per page:

* ``ours``: ``render_pages(data, page:1600:jpeg, max_pages=10)``: each page drawn by PDFium straight into a
  1131 x 1600 bitmap, then encoded;
* ``naive``: PDFium renders each page at 300 dpi (``page.render(scale=300/72)``: 2480 x 3508), Pillow
  resizes it to 1131 x 1600 (LANCZOS) and encodes it: what a script that "renders, then thumbnails" does.

Each method runs in its own subprocess pinned to CPU 0 (``os.sched_setaffinity``); rounds are interleaved,
so both see the same noise. Memory is read from ``/proc/self/status``: the peak (``VmHWM``) and the
increment over ``VmRSS`` right after the imports. Read the ratios; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from devkit.pdfwrite import assemble  # noqa: E402

PAGES = 10
A4 = (595, 842)
LONG_EDGE = 1600
NAIVE_DPI = 300


def _rss(field: str) -> int:
    """A ``/proc/self/status`` figure in bytes (VmHWM: peak resident set; VmRSS: now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


# ---------------------------------------------------------------- the brochure (parent only)
def _photo(seed: int) -> bytes:
    from PIL import Image, ImageFilter

    small = (200, 134)
    red = Image.linear_gradient("L").resize(small).rotate(90 + seed * 17)
    green = Image.radial_gradient("L").resize(small)
    blue = Image.effect_noise(small, 40 + seed).filter(ImageFilter.GaussianBlur(2))
    image = Image.merge("RGB", (red, green, blue)).resize((1600, 1067), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((800, 534), 20).convert("RGB").resize((1600, 1067))
    out = io.BytesIO()
    Image.blend(image, grain, 0.1).save(out, "JPEG", quality=88)
    return out.getvalue()


def brochure(pages: int = PAGES) -> bytes:
    """A classic PDF 1.4 file: catalog, page tree, one font, then per page an image, its content and the page."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for n in range(pages):
        jpeg = _photo(n)
        objects.append(b"<< /Type /XObject /Subtype /Image /Width 1600 /Height 1067 /ColorSpace /DeviceRGB "
                       b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % len(jpeg) + jpeg
                       + b"\nendstream")
        image_ref = len(objects)
        lines = "".join(f"BT /F1 10 Tf 50 {300 - 14 * i} Td (Line {i + 1} of the listing description: "
                        f"rooms, views, terms and the agent's details.) Tj ET\n" for i in range(16))
        content = (f"q 495 0 0 300 50 470 cm /Im0 Do Q\n"
                   f"BT /F1 24 Tf 50 800 Td (12 Harbour View - page {n + 1}) Tj ET\n"
                   f"0.2 0.3 0.5 RG 2 w 50 460 m 545 460 l S 0.95 0.95 0.9 rg 50 320 495 120 re f\n"
                   f"0 0 0 rg {lines}").encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        content_ref = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] /Contents {content_ref} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> /XObject << /Im0 {image_ref} 0 R >> >> >>".encode())
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {pages} >>".encode()
    return assemble(objects)


# ---------------------------------------------------------------- the methods (child only)
def _ours(data: bytes) -> list[tuple[int, int, int]]:
    from services.variants import parse_variants
    from workers.pdf import render_pages

    _, pages = render_pages(data, parse_variants(f"page:{LONG_EDGE}:jpeg"), max_pages=PAGES)
    return [(p.width, p.height, len(p.data)) for p in pages]


def _naive(data: bytes) -> list[tuple[int, int, int]]:
    import pypdfium2 as pdfium
    from PIL import Image

    out = []
    document = pdfium.PdfDocument(data)
    try:
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=NAIVE_DPI / 72)
            full = bitmap.to_pil()
            bitmap.close()
            scale = LONG_EDGE / max(full.size)
            small = full.resize((round(full.width * scale), round(full.height * scale)), Image.Resampling.LANCZOS)
            full.close()
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=85)
            out.append((small.width, small.height, buffer.tell()))
            page.close()
    finally:
        document.close()
    return out


METHODS = {"ours": _ours, "naive": _naive}


def child(method: str, path: str, timed: int) -> None:
    os.sched_setaffinity(0, {0})
    import pypdfium2  # noqa: F401  (imports out of the measured increment for both methods)
    from PIL import Image  # noqa: F401

    import workers.pdf  # noqa: F401

    data = Path(path).read_bytes()
    base = _rss("VmRSS")
    fn = METHODS[method]
    sizes = fn(data)  # warm-up
    times = []
    for _ in range(timed):
        started = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - started)
    print(json.dumps({"method": method, "times": times, "sizes": sizes, "peak": _rss("VmHWM"),
                      "increment": _rss("VmHWM") - base}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "PATH", "TIMED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    rounds, timed = (1, 1) if args.quick else (3, 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "brochure.pdf"
        path.write_bytes(brochure())
        print(f"{PAGES}-page A4 brochure, {path.stat().st_size / 1e6:.1f} MB; {LONG_EDGE} px JPEG per page; "
              f"naive renders at {NAIVE_DPI} dpi; {rounds} round(s) x {timed} timed run(s); CPU 0")
        results: dict[str, list[dict]] = {m: [] for m in METHODS}
        for _ in range(rounds):
            for method in METHODS:
                completed = subprocess.run([sys.executable, __file__, "--child", method, str(path), str(timed)],
                                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                           capture_output=True, text=True, check=True)
                results[method].append(json.loads(completed.stdout))
    summary = {}
    for method, runs in results.items():
        seconds = statistics.median(t for run in runs for t in run["times"])
        summary[method] = {"pages_s": PAGES / seconds, "peak": max(r["peak"] for r in runs),
                           "increment": max(r["increment"] for r in runs), "size": runs[0]["sizes"][0][:2]}
        print(f"{method:<6} {PAGES / seconds:6.1f} pages/s  (median {seconds * 1000:7.0f} ms per document)  "
              f"peak RSS {summary[method]['peak'] / 2**20:6.1f} MiB  increment "
              f"{summary[method]['increment'] / 2**20:6.1f} MiB  page {summary[method]['size']}")
    ours, naive = summary["ours"], summary["naive"]
    print(f"ratio: ours is {ours['pages_s'] / naive['pages_s']:.2f}x naive's pages/s at "
          f"{ours['increment'] / naive['increment']:.2f}x its memory increment "
          f"({ours['peak'] / naive['peak']:.2f}x its peak RSS)")


if __name__ == "__main__":
    main()
