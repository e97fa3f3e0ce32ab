"""Draw a product onto an e-paper panel (black/white, +red, +yellow, or all four) with Pillow.

The result is a palette ("P") image whose only colours are the panel's inks, drawn without
anti-aliasing (Pillow draws text on "P" images in 1-bit mode), so every pixel maps to an ink the
panel has. Any panel size is drawn: the layouts for 296x128 and 400x300 are scaled to it.
Text is fitted: a field shrinks from its largest to its smallest font size, and only
then is it cut with "…" - and the result says so (:attr:`RenderResult.truncated`). Money is never
cut: if a price cannot fit even at its smallest size, :class:`PriceDoesNotFit` is raised.

Fonts (:mod:`drivers.label.fonts`): DejaVu Sans, then a CJK font glyph by glyph. Text that no
installed font can draw raises :class:`UnrenderableText`; only a currency sign the fonts lack is
replaced, by its ISO code (:attr:`RenderResult.substitutions`).
"""

from drivers.label.fonts import FontSet, font_default
from drivers.label.render.draw import render_label
from drivers.label.render.encode import from_png, palette_bytes, palette_indices, to_jpeg, to_png
from drivers.label.render.layout import (
    BLACK,
    ELLIPSIS,
    LAYOUTS,
    PALETTE_RGB,
    PANELS,
    RED,
    WHITE,
    YELLOW,
    Box,
    Layout,
    PanelSpec,
    TextSlot,
    layout_for,
)
from drivers.label.render.result import (
    FieldRender,
    PriceDoesNotFit,
    RenderError,
    RenderProblem,
    RenderResult,
    UnrenderableText,
)

__all__ = [
    "BLACK",
    "ELLIPSIS",
    "LAYOUTS",
    "PALETTE_RGB",
    "PANELS",
    "RED",
    "WHITE",
    "YELLOW",
    "Box",
    "FieldRender",
    "FontSet",
    "Layout",
    "PanelSpec",
    "PriceDoesNotFit",
    "RenderError",
    "RenderProblem",
    "RenderResult",
    "TextSlot",
    "UnrenderableText",
    "font_default",
    "from_png",
    "layout_for",
    "palette_bytes",
    "palette_indices",
    "render_label",
    "to_jpeg",
    "to_png",
]
