"""Benchmark: workers.imaging.render_variants against naive Pillow and libvips, on one core.

    .venv/bin/python bench/images.py            # full run (3 rounds x (1 warm-up + 5 timed))
    .venv/bin/python bench/images.py --quick    # 1 round x (1 warm-up + 2 timed)

It generates photo-like test images in a temp dir (never committed): a real photo (scikit-image's
``coffee``) upscaled, plus 1/f texture modulated by brightness, a 0.6 px blur and luminance/chroma grain,
so a q90 JPEG is ~0.3 bytes/pixel like a camera file (Huffman decoding cost follows compressed size).
Each method runs in its own subprocess pinned to CPU 0. Memory is read twice per child, from
``/proc/self/status``: the peak (``VmHWM``, interpreter and imports included, as in docs/reference's
measurements) and the *pipeline* increment, that peak minus ``VmRSS`` right after the method's imports
(before the warm-up call). ``import workers.imaging`` loads only the image path (Pillow and its plugins,
zlib-ng, hashlib); the process registry in ``workers/__init__`` (marshmallow) is built on first use, and
pillow-heif is loaded only for HEIF files. So the total is what our image path costs, and the increment
is what a job adds to a worker (which also has rq, redis and simple-salesforce imported). Both are
reported, with a PASS/FAIL for each. Each child also reports which job-only libraries it had loaded
(there should be none). Rounds are interleaved and methods shuffled, because the machine is shared and
noisy: read the ratios, not the absolute times.

Methods: ``naive`` (open, exif_transpose, convert RGB, LANCZOS from full size per variant, encode),
``ours`` (render_variants) and ``vips`` (thumbnail(file, 1600) -> copy_memory -> thumbnail_image(800)
-> thumbnail_image(200), with libvips' operation cache off; only if pyvips is importable:
``pip install "pyvips[binary]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = (("large", 1600, "jpeg"), ("medium", 800, "webp"), ("thumb", 200, "jpeg"))
IMAGES = {  # name: (width, height, format, orientation)
    "photo24_o6.jpg": (6000, 4000, "JPEG", 6),
    "photo12.jpg": (4000, 3000, "JPEG", 1),
    "photo12.png": (4000, 3000, "PNG", 1),
}
GOAL_SPEEDUP = {"photo24_o6.jpg": 3.0, "photo12.jpg": 2.4, "photo12.png": 1.4}
GOAL_SSIM = 0.99
GOAL_RSS_SHARE = 0.40


# ---------------------------------------------------------------- test photos (parent only)
def make_photo(width: int, height: int, seed: int = 1):  # -> PIL.Image.Image
    """A grainy photo-like RGB image: real composition and colour, 1/f texture, optical blur, grain."""
    import numpy as np
    from PIL import Image, ImageFilter
    from skimage import data

    rng = np.random.default_rng(seed)
    arr = np.asarray(Image.fromarray(data.coffee()).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    lum = arr.mean(axis=2) / 255.0
    pink = np.zeros((height, width), np.float32)
    octaves = 0
    while (width >> octaves) >= 8 and octaves < 9:  # equal-amplitude octaves ~ a 1/f amplitude spectrum
        small = rng.standard_normal((max(2, height >> octaves), max(2, width >> octaves)), dtype=np.float32)
        pink += np.asarray(Image.fromarray(small, "F").resize((width, height), Image.Resampling.BICUBIC))
        octaves += 1
    arr += (pink * (14.0 / np.sqrt(octaves)) * (0.35 + 0.65 * lum))[:, :, None]
    del pink, lum
    blurred = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    arr = np.asarray(blurred, dtype=np.float32)
    arr += rng.standard_normal((height, width, 1), dtype=np.float32) * 5.0  # luminance grain
    arr += rng.standard_normal((height, width, 3), dtype=np.float32) * 2.5  # chroma grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_images(directory: Path) -> dict[str, Path]:
    from PIL import Image

    paths = {}
    for name, (w, h, fmt, orientation) in IMAGES.items():
        path = directory / name
        im = make_photo(w, h, seed=len(paths) + 1)
        if fmt == "JPEG":
            exif = Image.Exif()
            if orientation != 1:
                exif[0x0112] = orientation  # stored 6000x4000, displays as a 4000x6000 portrait
            im.save(path, "JPEG", quality=90, exif=exif)
        else:
            im.save(path, "PNG")
        size = path.stat().st_size
        print(f"  {name}: {w}x{h} {size / 1e6:.2f} MB ({size / (w * h):.2f} B/px)", file=sys.stderr)
        paths[name] = path
    return paths


# ---------------------------------------------------------------- methods (child only)
def _fit(width: int, height: int, long_edge: int) -> tuple[int, int]:
    scale = long_edge / max(width, height)
    return (width, height) if scale >= 1 else (max(1, round(width * scale)), max(1, round(height * scale)))


def run_naive(path: Path, lossless: bool = False) -> list[tuple[str, bytes, tuple[int, int]]]:
    import io

    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    out = []
    for name, edge, fmt in VARIANTS:
        r = im.resize(_fit(*im.size, edge), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        if lossless:
            r.save(buf, "PNG", compress_level=1)
        else:
            r.save(buf, fmt.upper(), **({"quality": 85} if fmt == "jpeg" else {"quality": 80, "method": 4}))
        out.append((name, buf.getvalue(), r.size))
    return out


def run_ours(path: Path, lossless: bool = False) -> list[tuple[str, bytes, tuple[int, int]]]:
    from workers.imaging import DEFAULT_VARIANTS_SPEC, Variant, parse_variants, render_variants

    variants = parse_variants(DEFAULT_VARIANTS_SPEC)
    if lossless:  # same pipeline, PNG encode: the pixels before lossy encoding
        variants = tuple(Variant(v.name, v.long_edge, "png") for v in variants)
    _, renditions = render_variants(path, variants)
    return [(r.variant.name, r.data, (r.width, r.height)) for r in renditions]


def run_vips(path: Path) -> list[tuple[str, bytes, tuple[int, int]]]:
    import pyvips

    # No operation cache: a worker sees every upload once, while this benchmark repeats the same file, and
    # libvips' cache (100 operations / 100 MB by default) reuses work across those repeats. Measured on the
    # 24 MP photo: ~3 % faster with the cache, and it holds tens of MB of the reported RSS.
    pyvips.cache_set_max(0)
    big = pyvips.Image.thumbnail(str(path), 1600, height=1600).copy_memory()
    medium = big.thumbnail_image(800, height=800)
    thumb = medium.thumbnail_image(200, height=200)
    return [
        ("large", big.jpegsave_buffer(Q=85, keep="none"), (big.width, big.height)),
        ("medium", medium.webpsave_buffer(Q=80, effort=4, keep="none"), (medium.width, medium.height)),
        ("thumb", thumb.jpegsave_buffer(Q=85, keep="none"), (thumb.width, thumb.height)),
    ]


METHODS = {"naive": run_naive, "ours": run_ours, "vips": run_vips}
#: What each method imports before it can run: measured as the child's baseline RSS. Each imports what it
#: uses and no more; whatever a method loads on its first call (Pillow's format plugins for ``naive``,
#: libvips' first-use allocations) counts in its pipeline increment.
IMPORTS = {"naive": ("PIL.Image", "PIL.ImageOps"), "ours": ("workers.imaging",), "vips": ("pyvips",)}
#: Libraries no method needs for these images: reported per child, so a baseline that includes them is seen.
#: rq/redis/simple_salesforce/marshmallow are the job's and the registry's, pillow_heif is for HEIC only,
#: numpy/skimage are the parent's (test photos, SSIM).
FOREIGN = ("rq", "redis", "simple_salesforce", "marshmallow", "pillow_heif", "numpy", "skimage")


def _status_mb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith(field + ":")).split()[1]) / 1024


def child(method: str, path: Path, iterations: int, outdir: Path) -> None:
    os.sched_setaffinity(0, {0})
    import importlib

    for module in IMPORTS[method]:
        importlib.import_module(module)
    after_imports = _status_mb("VmRSS")
    fn = METHODS[method]
    fn(path)  # warm-up: first-use allocations and plugin imports, page cache
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        out = fn(path)
        times.append(time.perf_counter() - t0)
    sizes = {}
    for name, data, size in out:
        (outdir / f"{path.name}.{method}.{name}").write_bytes(data)
        sizes[name] = [*size, len(data)]
    # VmHWM: this process's peak RSS (interpreter included). Not ru_maxrss: Linux carries the parent's
    # high-water mark into a forked child, and the parent holds the generated photos.
    peak = _status_mb("VmHWM")
    foreign = sorted(name for name in FOREIGN if name in sys.modules)
    print(json.dumps({"times": times, "sizes": sizes, "peak_rss_mb": peak, "imports_rss_mb": after_imports,
                      "foreign": foreign}))  # fmt: skip


# ---------------------------------------------------------------- harness (parent)
def spawn(method: str, path: Path, iterations: int, outdir: Path) -> tuple[list[float], dict, float, float, list[str]]:
    env = {**os.environ, "VIPS_CONCURRENCY": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", method, str(path), str(iterations), str(outdir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    raw = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"{method} on {path.name} failed with exit code {proc.returncode}")
    result = json.loads(raw)
    if result["foreign"]:
        print(f"  warning: {method} on {path.name} had {', '.join(result['foreign'])} loaded", file=sys.stderr)
    return result["times"], result["sizes"], result["peak_rss_mb"], result["imports_rss_mb"], result["foreign"]


def pixel_ssim(path: Path) -> dict[str, float | None]:
    """SSIM of ours vs naive *before* lossy encoding (both PNG), as the reference's "resample" column."""
    naive = {name: data for name, data, _ in run_naive(path, lossless=True)}
    return {name: ssim(data, naive[name]) for name, data, _ in run_ours(path, lossless=True)}


def ssim(a: bytes, b: bytes) -> float | None:
    import io

    import numpy as np
    from PIL import Image
    from skimage.metrics import structural_similarity

    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"))
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
    if x.shape != y.shape:
        return None
    return float(structural_similarity(x, y, channel_axis=2, data_range=255))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 warm-up + 2 timed iterations")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results to this file")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "IMAGE", "N", "OUTDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, image, n, outdir = args.child
        child(method, Path(image), int(n), Path(outdir))
        return 0

    rounds = args.rounds or (1 if args.quick else 3)
    iterations = args.iterations or (2 if args.quick else 5)
    methods = ["naive", "ours"]
    try:
        import pyvips  # noqa: F401

        methods.append("vips")
    except (ImportError, OSError):
        print("pyvips not importable: skipping libvips (pip install 'pyvips[binary]')", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="offload-bench-images-") as tmp:
        tmpdir, outdir = Path(tmp), Path(tmp) / "out"
        outdir.mkdir()
        print("generating test photos ...", file=sys.stderr)
        paths = write_images(tmpdir)
        times: dict[tuple[str, str], list[float]] = {}
        rss: dict[tuple[str, str], float] = {}
        pipeline: dict[tuple[str, str], float] = {}
        sizes: dict[tuple[str, str], dict] = {}
        foreign: dict[str, set[str]] = {method: set() for method in methods}
        for r in range(rounds):
            for name, path in paths.items():
                order = random.sample(methods, len(methods))
                for method in order:
                    t, s, peak, base, loaded = spawn(method, path, iterations, outdir)
                    foreign[method].update(loaded)
                    times.setdefault((name, method), []).extend(t)
                    rss[(name, method)] = max(rss.get((name, method), 0.0), peak)
                    pipeline[(name, method)] = max(pipeline.get((name, method), 0.0), peak - base)
                    sizes[(name, method)] = s
                    print(f"  round {r + 1} {name} {method}: med {statistics.median(t):.3f} s", file=sys.stderr)
        results = report(paths, methods, times, rss, pipeline, sizes, foreign, outdir, rounds, iterations)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def report(paths, methods, times, rss, pipeline, sizes, foreign, outdir, rounds, iterations) -> dict:
    print(f"\n{rounds} round(s) x (1 warm-up + {iterations} timed), n={rounds * iterations} per cell, "
          f"one core (CPU 0), {time.strftime('%Y-%m-%d')}\n")  # fmt: skip
    print("| image | method | s/image min/med/max | images/s | vs naive | peak RSS MB (% of naive) | pipeline MB "
          "(% of naive) | output SSIM vs naive output (1600/800/200) | bytes (1600/800/200) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    rows: list[dict] = []
    goals: list[tuple[str, bool]] = []
    pixels = {name: pixel_ssim(path) for name, path in paths.items()}
    for name in paths:
        naive_med = statistics.median(times[(name, "naive")])
        for method in methods:
            t = times[(name, method)]
            med = statistics.median(t)
            sims = []
            for variant, _, _ in VARIANTS:
                if method == "naive":
                    sims.append("–")
                    continue
                base = (outdir / f"{name}.naive.{variant}").read_bytes()
                value = ssim((outdir / f"{name}.{method}.{variant}").read_bytes(), base)
                sims.append("dims differ" if value is None else f"{value:.4f}")
                if method == "ours":
                    px = pixels[name][variant]
                    ok = px is not None and px >= GOAL_SSIM
                    goals.append((f"{name} {variant}: pixel SSIM {px:.4f} >= {GOAL_SSIM}", ok))
            share = rss[(name, method)] / rss[(name, "naive")]
            pshare = pipeline[(name, method)] / pipeline[(name, "naive")]
            size_text = "/".join(f"{sizes[(name, method)][v][2] / 1000:.1f}k" for v, _, _ in VARIANTS)
            print(f"| {name} | {method} | {min(t):.3f}/{med:.3f}/{max(t):.3f} | {1 / med:.2f} | "
                  f"{naive_med / med:.2f}x | {rss[(name, method)]:.0f} ({share:.0%}) "
                  f"| {pipeline[(name, method)]:.0f} ({pshare:.0%}) | {' / '.join(sims)} | {size_text} |")  # fmt: skip
            rows.append({"image": name, "method": method, "times": t, "median_s": med, "vs_naive": naive_med / med,
                         "peak_rss_mb": rss[(name, method)], "pipeline_mb": pipeline[(name, method)],
                         "output_ssim": sims, "sizes": sizes[(name, method)]})  # fmt: skip
            for v, _, _ in VARIANTS:
                if sizes[(name, method)][v][:2] != sizes[(name, "naive")][v][:2]:
                    print(f"|   dims differ: {method} {v} {sizes[(name, method)][v][:2]} vs naive "
                          f"{sizes[(name, 'naive')][v][:2]} |")  # fmt: skip
        ours_med = statistics.median(times[(name, "ours")])
        speedup = naive_med / ours_med
        goals.append((f"{name}: speed-up {speedup:.2f}x >= {GOAL_SPEEDUP[name]}x", speedup >= GOAL_SPEEDUP[name]))
        for label, mem in (("total", rss), ("pipeline", pipeline)):
            share = mem[(name, "ours")] / mem[(name, "naive")]
            goals.append((f"{name}: peak RSS ({label}) {share:.0%} of naive <= {GOAL_RSS_SHARE:.0%}",
                          share <= GOAL_RSS_SHARE))  # fmt: skip
        if "vips" in methods and name.endswith(".jpg"):
            ratio = statistics.median(times[(name, "vips")]) / ours_med
            goals.append((f"{name}: throughput {ratio:.2f}x libvips chain >= 1.00x", ratio >= 1.0))
    print("\nLibraries no method needs, loaded in its child (" + ", ".join(FOREIGN) + "): "
          + "; ".join(f"{m} {', '.join(sorted(foreign[m])) or 'none'}" for m in methods))  # fmt: skip
    print("\nSSIM of ours vs naive before lossy encoding (pixels, both PNG):")
    for name, values in pixels.items():
        print(f"  {name}: " + " / ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None))
    print()
    for text, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return {"rows": rows, "pixel_ssim": pixels, "goals": [{"goal": text, "pass": ok} for text, ok in goals],
            "foreign": {m: sorted(foreign[m]) for m in methods},
            "rounds": rounds, "iterations": iterations}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
