"""A rendered label as bytes: PNG, JPEG for the OpenEPaperLink AP, raw palette indices."""

from __future__ import annotations

import io

from PIL import Image


def palette_indices(image: Image.Image) -> set[int]:
    """Palette indices present in a "P" image."""
    colors = image.getcolors(maxcolors=256)
    assert colors is not None
    return {index for _, index in colors if isinstance(index, int)}


def to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def from_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def to_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """JPEG for the OpenEPaperLink AP: full chroma resolution, so red edges stay red."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def palette_bytes(image: Image.Image) -> bytes:
    """One palette index (0 white, 1 black, 2 red, 3 yellow) per pixel, row-major."""
    if image.mode != "P":
        raise ValueError("expected a palette image from render_label")
    return image.tobytes()
