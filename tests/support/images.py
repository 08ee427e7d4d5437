"""Photo-like JPEGs for worker and integration tests (generated, never committed)."""

from __future__ import annotations

import io

from PIL import Image

from tests.support.imagegen import exif_block, photo_image


def photo_jpeg(width: int, height: int, *, orientation: int | None = None, seed: int = 0, quality: int = 90) -> bytes:
    """A photo-like JPEG of that size, optionally with an EXIF Orientation tag."""
    buffer = io.BytesIO()
    image: Image.Image = photo_image(width, height, seed=seed)
    params: dict[str, object] = {"quality": quality}
    if orientation:
        params["exif"] = exif_block(orientation).tobytes()
    image.save(buffer, "JPEG", **params)
    return buffer.getvalue()
