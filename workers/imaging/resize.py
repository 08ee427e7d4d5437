"""Resizes that never hold Pillow's full-size intermediate image, and the residual-step kernel.

``Image.resize`` is two passes into a temporary image (``out_width x in_height`` when the horizontal
pass runs first). For a 2000x1500 decode resized to 1600x1200 that temporary is 9.6 MB on top of the
12 MB source and the 7.7 MB result: a third of the pipeline's peak RSS (VmHWM probes, see
docs/benchmarks.md "Images"). Two ways around it, both giving each output row the filter weights a
full resize gives it (Pillow derives them from the ``box`` centre and the *source* height; only a
band's box is rounded to C float, which can move a weight in the 7th digit):

* :func:`banded_resize`, for an image already in memory: one Pillow call per band of output rows.
* :class:`StreamingResizer`, for rows that arrive in bands (the PNG band decoder): the horizontal pass
  on the source rows as they come (each row once), the vertical pass on a window of those, for a
  batch of output rows once every row their filter reads has arrived.

Pillow 13 picks which pass runs first from the sizes (a whole 2000x1500 -> 1600x1200 or 3000x2000 ->
1600x1067 image: horizontal first; a short band: vertical first), and the two orders round and clip
the intermediate differently: 1-2 levels on photos, up to ~40 on synthetic noise, where LANCZOS
overshoots everywhere. :class:`StreamingResizer` is explicitly horizontal-first.
"""

from __future__ import annotations

from PIL import Image

#: Output rows per band of :func:`banded_resize`. 256 rows of a 1600 px image is a ~1.6 MB temporary
#: (instead of 9.6 MB for 1600x1500); 128-row bands measured up to ~6 % slower on the 24 MP resize
#: (each band's pass also covers the filter support above and below it), 256 within the noise.
BAND_ROWS = 256
#: Source rows per horizontal-pass call of :class:`StreamingResizer`. Each call costs ~0.4 ms of filter
#: weights for a 1600 px row on top of ~0.03 ms per row: per 5-row PNG band that was 0.2 s per image.
H_BATCH = 64
#: Output rows per vertical-pass batch of :class:`StreamingResizer`: its window holds ~``batch * scale``
#: horizontally resized rows (twice while merging). Each batch is one Pillow call; 64 rows keep the
#: per-call overhead in the noise.
STREAM_BATCH = 64
#: Pillow's ``_filters_support`` for the kernels we may use.
_SUPPORT = {Image.Resampling.LANCZOS: 3.0, Image.Resampling.BICUBIC: 2.0, Image.Resampling.HAMMING: 1.0}

Box = tuple[float, float, float, float]

#: The step left after the DCT-scaled JPEG decode or the integer box reduce uses :data:`LARGE_STEP_KERNEL`
#: from this scale up, LANCZOS below. LANCZOS's cost grows with the step (support 3 x scale), so that is
#: where a cheaper kernel pays most; on a 1.25x step it would save ~20 ms but cost ~0.001 SSIM where
#: there is no margin (pixel SSIM vs. naive, 12 MP JPEG 0.9890 -> 0.9882, 12 MP PNG 0.9904 -> 0.9893).
BICUBIC_FROM_SCALE = 1.5
#: On the 24 MP photo (3000 -> 1600, 1.875x) BICUBIC takes ~60 ms instead of ~85 ms for LANCZOS at a
#: pixel SSIM vs. naive of 0.9948 instead of 0.9958. HAMMING (~35 ms) would make the whole job ~10 %
#: faster still, which is what beats libvips on that photo, at SSIM 0.991: too little margin to make
#: it the default on one synthetic photo (docs/benchmarks.md, "Images").
LARGE_STEP_KERNEL = Image.Resampling.BICUBIC


def residual_kernel(scale: float) -> Image.Resampling:
    """The kernel for a residual step of ``scale`` (>= 1): see :data:`BICUBIC_FROM_SCALE`."""
    return LARGE_STEP_KERNEL if scale >= BICUBIC_FROM_SCALE else Image.Resampling.LANCZOS


def _window(center: float, support: float, in_size: int) -> tuple[int, int]:
    """Source rows ``[lo, hi)`` one output row reads, exactly as Pillow's ``precompute_coeffs``."""
    return max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)


def banded_resize(
    im: Image.Image,
    size: tuple[int, int],
    box: Box | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> Image.Image:
    """``im.resize(size, resample, box=box)`` with at most :data:`BAND_ROWS` output rows of temporary.

    For an image already in memory (the DCT-scaled JPEG): one Pillow call per band of output rows,
    with the matching sub-box of ``im``. Pillow runs each band vertical-first (its choice for a short
    band), so a pixel can differ from a one-call resize by the intermediate's rounding, 1-2 levels on
    photos (tests pin this). Running the passes explicitly per band, as :class:`StreamingResizer`
    does, cost 10-25 % more here: every Pillow call recomputes both passes' filter weights.
    Only for modes Pillow resizes directly (not RGBA/LA, which it premultiplies as a whole first).
    """
    if im.mode in ("RGBA", "LA", "P", "1"):
        raise ValueError(f"banded_resize does not handle mode {im.mode}")
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(im.width), float(im.height))
    if size[1] <= BAND_ROWS:
        return im.resize(size, resample, box=(x0, y0, x1, y1))
    scale = (y1 - y0) / size[1]
    out = Image.new(im.mode, size, None)  # no fill: every row is pasted
    for r0 in range(0, size[1], BAND_ROWS):
        r1 = min(r0 + BAND_ROWS, size[1])
        part = im.resize((size[0], r1 - r0), resample, box=(x0, y0 + r0 * scale, x1, y0 + r1 * scale))
        out.paste(part, (0, r0))
        part.close()
    return out


class StreamingResizer:
    """Resize a source that arrives top to bottom in bands, keeping only the rows still needed.

    ``in_size`` is the full source size, ``box`` the source region (Pillow's ``resize`` box) that maps
    onto ``size``. Feed every source row exactly once with :meth:`add`, then take :meth:`result`.
    Output rows are computed in batches of at least ``batch`` rows (see :data:`STREAM_BATCH`).
    """

    def __init__(
        self,
        mode: str,
        in_size: tuple[int, int],
        size: tuple[int, int],
        box: Box,
        resample: Image.Resampling = Image.Resampling.LANCZOS,
        batch: int = STREAM_BATCH,
    ) -> None:
        if mode in ("RGBA", "LA", "P", "1"):
            raise ValueError(f"StreamingResizer does not handle mode {mode} (premultiply to RGBa/La first)")
        self.mode, self.in_size, self.size, self.box, self.batch = mode, in_size, size, box, batch
        self.resample = resample
        self._scale = (box[3] - box[1]) / size[1]
        self._support = _SUPPORT[resample] * max(self._scale, 1.0)
        self._horizontal = size[0] != in_size[0] or box[0] != 0 or box[2] != in_size[0]
        self._out = Image.new(mode, size, None)  # no fill: every row is pasted (result() checks)
        self._next = 0  # first output row not yet written
        self._ready = 0  # output rows [0, _ready) have all their source rows (scanned once, not per band)
        self._rows_in: list[Image.Image] = []  # source rows [_top, _resized), horizontally resized
        self._pending: list[Image.Image] = []  # source rows [_resized, _received), not yet
        self._top = 0
        self._resized = 0
        self._received = 0

    def _rows(self, row: int) -> tuple[int, int]:
        return _window(self.box[1] + (row + 0.5) * self._scale, self._support, self.in_size[1])

    def add(self, band: Image.Image) -> None:
        """Append the next ``band.height`` source rows; write the output rows they complete, in batches."""
        if band.mode != self.mode or band.width != self.in_size[0]:
            raise ValueError(f"band is {band.mode} {band.width} px wide, expected {self.mode} {self.in_size[0]}")
        if self._received + band.height > self.in_size[1]:
            raise ValueError("more source rows than the declared height")
        self._pending.append(band)
        self._received += band.height
        done = self._received == self.in_size[1]
        if done:
            self._ready = self.size[1]
        while self._ready < self.size[1] and self._rows(self._ready)[1] <= self._received:
            self._ready += 1
        emit = self._ready - self._next >= self.batch or (done and self._ready > self._next)
        if emit or self._received - self._resized >= H_BATCH:
            self._resize_pending()
        if emit:
            self._emit(self._ready)

    def _resize_pending(self) -> None:
        """Run the horizontal pass over the rows received since the last one, in one Pillow call."""
        rows = _stack(self._pending, self.mode, self.in_size[0])
        self._pending = []
        if self._horizontal:  # the box spans whole rows, so Pillow runs the horizontal pass only
            x0, _, x1, _ = self.box
            rows = rows.resize((self.size[0], rows.height), self.resample, box=(x0, 0, x1, rows.height))
        self._rows_in.append(rows)
        self._resized = self._received

    def _emit(self, end: int) -> None:
        width = self.size[0]
        window = _stack(self._rows_in, self.mode, width)
        top = self.box[1] + self._next * self._scale - self._top
        bottom = self.box[1] + end * self._scale - self._top
        # Full-width box: Pillow runs the vertical pass only.
        part = window.resize((width, end - self._next), self.resample, box=(0, top, width, bottom))
        self._out.paste(part, (0, self._next))
        part.close()
        self._next = end
        # Keep only the rows a later output row still reads.
        keep = min(self._rows(end)[0] if end < self.size[1] else self._received, self._received)
        self._rows_in = [window.crop((0, keep - self._top, width, window.height))] if keep < self._received else []
        window.close()
        self._top = keep

    def result(self) -> Image.Image:
        """The resized image; raises if source rows are missing (a truncated decode must not pass)."""
        if self._received != self.in_size[1] or self._next != self.size[1]:
            raise OSError(f"image is truncated: {self._received} of {self.in_size[1]} rows decoded")
        self._rows_in = []
        return self._out


def _stack(images: list[Image.Image], mode: str, width: int) -> Image.Image:
    """One image of ``images`` one above the other (the image itself when there is only one)."""
    if len(images) == 1:
        return images[0]
    out = Image.new(mode, (width, sum(im.height for im in images)), None)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height
    return out
