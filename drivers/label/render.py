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

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from PIL import Image, ImageDraw
from pydantic import JsonValue

from core.events import JsonObject
from drivers.label.content import (
    PriceFormat,
    ProductContent,
    currency_symbol,
    format_money,
    format_unit_price,
)
from drivers.label.fonts import FontChain, FontSet, font_default
from drivers.label.tagtypes import Palette

log = logging.getLogger(__name__)

WHITE = 0
BLACK = 1
RED = 2
YELLOW = 3
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (0, 0, 0),
    (255, 0, 0),
    (255, 255, 0),
)
"""Palette index -> colour; a rendered label contains only the ones its panel has."""

ELLIPSIS = "…"

Colors = Palette


# --- panels and layouts ---------------------------------------------------------------------


@dataclass(frozen=True)
class PanelSpec:
    name: str
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


PANELS: dict[str, PanelSpec] = {
    "2.13": PanelSpec("2.13", 250, 122),
    "2.9": PanelSpec("2.9", 296, 128),
    "4.2": PanelSpec("4.2", 400, 300),
}


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h


@dataclass(frozen=True)
class TextSlot:
    """Where a field goes and how far its font may shrink."""

    box: Box
    max_size: int
    min_size: int
    max_lines: int = 1
    bold: bool = False


@dataclass(frozen=True)
class Layout:
    name: TextSlot
    price: TextSlot
    secondary: TextSlot
    """Regular price (struck through, when there is a promo) and/or the member price."""
    unit: TextSlot
    promo: TextSlot
    qr: Box
    promo_band: Box | None = None
    """Drawn red with the promo line in white; None draws the promo line in red on white."""
    qr_min_scale: int = 2
    """Pixels per QR module; below this a phone cannot read it and the QR is omitted."""


LAYOUTS: dict[str, Layout] = {
    "2.13": Layout(
        name=TextSlot(Box(3, 1, 244, 22), 20, 11, bold=True),
        price=TextSlot(Box(3, 24, 170, 48), 46, 14, bold=True),
        secondary=TextSlot(Box(3, 73, 170, 18), 16, 9, bold=True),
        unit=TextSlot(Box(3, 92, 170, 13), 12, 8),
        promo=TextSlot(Box(5, 107, 240, 14), 13, 8),
        qr=Box(176, 24, 72, 72),
        promo_band=Box(0, 106, 250, 16),
    ),
    "2.9": Layout(
        name=TextSlot(Box(3, 1, 290, 24), 22, 11, bold=True),
        price=TextSlot(Box(3, 26, 206, 50), 48, 14, bold=True),
        secondary=TextSlot(Box(3, 77, 206, 18), 16, 9, bold=True),
        unit=TextSlot(Box(3, 96, 206, 14), 13, 8),
        promo=TextSlot(Box(5, 112, 286, 15), 14, 8),
        qr=Box(214, 26, 80, 80),
        promo_band=Box(0, 111, 296, 17),
    ),
    "4.2": Layout(
        name=TextSlot(Box(6, 4, 388, 66), 30, 14, max_lines=2, bold=True),
        price=TextSlot(Box(6, 72, 250, 108), 100, 20, bold=True),
        secondary=TextSlot(Box(6, 182, 250, 30), 26, 12, bold=True),
        unit=TextSlot(Box(6, 214, 250, 26), 20, 10),
        promo=TextSlot(Box(8, 250, 384, 46), 26, 12, max_lines=2),
        qr=Box(262, 72, 132, 132),
        promo_band=Box(0, 246, 400, 54),
    ),
}


def layout_for(spec: PanelSpec) -> Layout:
    """The panel's own layout, else the nearest one scaled to its size."""
    if spec.name in LAYOUTS:
        return LAYOUTS[spec.name]
    base_name = "4.2" if spec.height / spec.width > 0.55 else "2.9"
    base, size = LAYOUTS[base_name], PANELS[base_name]
    sx, sy = spec.width / size.width, spec.height / size.height
    sf = min(sx, sy)

    def box(b: Box) -> Box:
        return Box(round(b.x * sx), round(b.y * sy), round(b.w * sx), round(b.h * sy))

    def slot(t: TextSlot) -> TextSlot:
        low = max(8, round(t.min_size * sf))
        return replace(t, box=box(t.box), max_size=max(low, round(t.max_size * sf)), min_size=low)

    return Layout(
        name=slot(base.name),
        price=slot(base.price),
        secondary=slot(base.secondary),
        unit=slot(base.unit),
        promo=slot(base.promo),
        qr=box(base.qr),
        promo_band=box(base.promo_band) if base.promo_band is not None else None,
        qr_min_scale=base.qr_min_scale,
    )


# --- results and errors ---------------------------------------------------------------------


class RenderError(Exception):
    """The content cannot be drawn on this panel."""


class PriceDoesNotFit(RenderError):
    """A money field does not fit even at its smallest font size; money is never cut."""

    def __init__(self, field_name: str, text: str, min_size: int, width: int) -> None:
        super().__init__(
            f"{field_name} {text!r} does not fit in {width} px even at {min_size} px font size"
        )
        self.field_name = field_name
        self.text = text


class UnrenderableText(RenderError):
    """A text has characters no installed font can draw; drawing it would show boxes."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        where = "; ".join(f"{name}: {' '.join(chars)}" for name, chars in missing.items())
        super().__init__(f"no installed font can draw {where}")
        self.missing = missing


@dataclass(frozen=True)
class FieldRender:
    """How one field was drawn; tests and reports use it, e.g. to look for ink in ``bbox``."""

    text: str
    """The text as drawn (lines joined with newlines; with "…" if truncated)."""
    size: int
    """Font size in pixels."""
    bbox: tuple[int, int, int, int]
    """Ink bounding box (left, top, right, bottom)."""
    color: int
    origin: tuple[int, int] = (0, 0)
    """Where the first line was anchored ("la": left, ascender)."""
    bold: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class RenderResult:
    image: Image.Image
    panel: PanelSpec
    fields: dict[str, FieldRender] = field(default_factory=dict)
    truncated: tuple[str, ...] = ()
    """Fields shortened with "…" (or a dropped member label): never silent."""
    omitted: tuple[str, ...] = ()
    """Fields not drawn at all (a QR code too dense for the space)."""
    substitutions: dict[str, str] = field(default_factory=dict)
    """E.g. {"€": "EUR"} when the font has no currency symbol."""

    def report(self) -> JsonObject:
        """JSON-able summary for action results and events."""
        return {
            "panel": self.panel.name,
            "truncated": list[JsonValue](self.truncated),
            "omitted": list[JsonValue](self.omitted),
            "substitutions": dict[str, JsonValue](self.substitutions),
        }


# --- text fitting ---------------------------------------------------------------------------


def _line_height(font: FontChain, lines: list[str] | None = None) -> int:
    return max(font.line_height(line) for line in lines) if lines else font.line_height()


def _width(font: FontChain, text: str) -> float:
    return font.width(text)


def _wrap(font: FontChain, text: str, width: int) -> list[str]:
    """Greedy word wrap; a word wider than the line (or Chinese, which has no spaces) is broken
    between characters."""
    lines: list[str] = []
    current = ""
    for whole_word in text.split():
        word = whole_word
        candidate = f"{current} {word}" if current else word
        if _width(font, candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while _width(font, word) > width and len(word) > 1:
            cut = _longest_prefix(font, word, width, suffix="")
            cut = max(cut, 1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def _longest_prefix(font: FontChain, text: str, width: int, suffix: str) -> int:
    """Largest k such that text[:k] (right-stripped) + suffix fits in width; 0 if none."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width(font, text[:mid].rstrip() + suffix) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class _Fitted:
    lines: list[str]
    font: FontChain
    size: int
    truncated: bool


def _fits(font: FontChain, lines: list[str], slot: TextSlot) -> bool:
    if len(lines) > slot.max_lines:
        return False
    if len(lines) * _line_height(font, lines) > slot.box.h:
        return False
    return all(_width(font, line) <= slot.box.w for line in lines)


def _fit(
    text: str, slot: TextSlot, fonts: FontSet, *, field_name: str, may_truncate: bool
) -> _Fitted:
    """Shrink until it fits; then (text fields only) cut with "…", else raise."""
    for size in range(slot.max_size, slot.min_size - 1, -1):
        font = fonts.font(size, bold=slot.bold)
        lines = _wrap(font, text, slot.box.w) if slot.max_lines > 1 else [text]
        if _fits(font, lines, slot):
            return _Fitted(lines, font, size, truncated=False)
    font = fonts.font(slot.min_size, bold=slot.bold)
    if not may_truncate:
        raise PriceDoesNotFit(field_name, text, slot.min_size, slot.box.w)
    max_lines = max(1, min(slot.max_lines, slot.box.h // max(1, _line_height(font, [text]))))
    lines = _wrap(font, text, slot.box.w) if max_lines > 1 else [text]
    kept = lines[: max_lines - 1]
    rest = " ".join(lines[max_lines - 1 :]) if max_lines > 1 else text
    cut = _longest_prefix(font, rest, slot.box.w, ELLIPSIS)
    last = rest[:cut].rstrip() + ELLIPSIS
    if _width(font, last) > slot.box.w:
        last = ""  # not even "…" fits: the field is reported truncated and left empty
    return _Fitted([*kept, last] if last else kept, font, slot.min_size, truncated=True)


# --- drawing --------------------------------------------------------------------------------


class _Canvas:
    def __init__(self, panel: PanelSpec, colors: Colors) -> None:
        self.image = Image.new("P", panel.size, WHITE)
        self.image.putpalette([c for rgb in PALETTE_RGB for c in rgb])
        self.draw = ImageDraw.Draw(self.image)
        self.accent = RED if "r" in colors[2:] else BLACK
        """Promo and member prices: red where the panel has it (yellow text is unreadable)."""
        self.band = YELLOW if "y" in colors[2:] else self.accent
        self.band_text = BLACK if self.band == YELLOW else WHITE
        """The promo band: yellow with black text where the panel has yellow."""

    def text(
        self,
        fitted: _Fitted,
        box: Box,
        color: int,
        *,
        align: Literal["left", "right", "center"] = "left",
        valign: Literal["top", "middle"] = "top",
        bold: bool = False,
    ) -> FieldRender:
        line_h = _line_height(fitted.font, fitted.lines)
        total_h = line_h * len(fitted.lines)
        y = box.y if valign == "top" else box.y + max(0, (box.h - total_h) // 2)
        origin: tuple[int, int] | None = None
        left, top, right, bottom = box.right, box.bottom, box.x, box.y
        for i, line in enumerate(fitted.lines):
            w = _width(fitted.font, line)
            if align == "left":
                x = box.x
            elif align == "right":
                x = box.right - int(w + 0.999)
            else:
                x = box.x + int((box.w - w) // 2)
            if line:  # glyphs with a negative left bearing (€) would poke out of the box
                x += max(0, -fitted.font.left_bearing(line))
            pos = (x, y + i * line_h)
            if origin is None:
                origin = pos
            if not line:
                continue
            lb = fitted.font.draw(self.draw, pos, line, color)
            left, top = min(left, int(lb[0])), min(top, int(lb[1]))
            right, bottom = max(right, int(lb[2])), max(bottom, int(lb[3]))
        if right < left:  # nothing drawn
            left, top, right, bottom = box.x, box.y, box.x, box.y
        return FieldRender(
            text="\n".join(fitted.lines),
            size=fitted.size,
            bbox=(left, top, right, bottom),
            color=color,
            origin=origin or (box.x, box.y),
            bold=bold,
            truncated=fitted.truncated,
        )

    def strike(self, render: FieldRender) -> None:
        left, top, right, bottom = render.bbox
        thickness = max(1, render.size // 10)
        mid = (top + bottom) // 2
        self.draw.rectangle(
            (left, mid - thickness // 2, right, mid + (thickness - 1) // 2), fill=BLACK
        )

    def qr(self, url: str, box: Box, min_scale: int) -> FieldRender | None:
        import segno

        border = 2  # modules of quiet zone; the label's white margin adds to it
        code = segno.make_qr(url, error="m", boost_error=False)
        matrix: list[bytearray] = list(code.matrix)
        modules = len(matrix)
        side = min(box.w, box.h)
        scale = side // (modules + 2 * border)
        if scale < min_scale:
            return None
        extent = modules * scale
        x0 = box.x + (box.w - extent) // 2
        y0 = box.y + (box.h - extent) // 2
        for r, row in enumerate(matrix):
            for c, dark in enumerate(row):
                if dark:
                    x, y = x0 + c * scale, y0 + r * scale
                    self.draw.rectangle((x, y, x + scale - 1, y + scale - 1), fill=BLACK)
        return FieldRender(
            text=url,
            size=scale,
            bbox=(x0, y0, x0 + extent, y0 + extent),
            color=BLACK,
            origin=(x0, y0),
        )


_RENDER_LOCK = threading.Lock()
"""FreeType faces are shared through the font cache; one render at a time keeps them safe."""


def render_label(
    content: ProductContent,
    panel: str | PanelSpec,
    *,
    fonts: FontSet | None = None,
    price_format: PriceFormat | None = None,
    colors: Colors = "bwr",
    layout: Layout | None = None,
) -> RenderResult:
    """Draw ``content`` for ``panel``; raise :class:`PriceDoesNotFit` rather than cut money and
    :class:`UnrenderableText` rather than draw boxes."""
    spec = PANELS[panel] if isinstance(panel, str) else panel
    layout = layout or layout_for(spec)
    fonts = fonts or font_default()
    with _RENDER_LOCK:
        renderer = _Renderer(
            content, spec, layout, fonts, price_format or PriceFormat(), _Canvas(spec, colors)
        )
        return renderer.run()


@dataclass
class _Renderer:
    """One render: the canvas plus what was drawn, cut or left out."""

    content: ProductContent
    spec: PanelSpec
    layout: Layout
    fonts: FontSet
    fmt: PriceFormat
    canvas: _Canvas
    fields: dict[str, FieldRender] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)
    substitutions: dict[str, str] = field(default_factory=dict)
    symbol: str = ""

    def run(self) -> RenderResult:
        c = self.content
        missing = self._missing_glyphs()
        if missing:
            log.warning(
                "label text has characters no installed font can draw",
                extra={
                    "fields": list(missing),
                    "characters": sorted({ch for chars in missing.values() for ch in chars}),
                },
            )
            raise UnrenderableText(missing)
        self.symbol = currency_symbol(c.currency, self.fmt.locale)
        missing_symbol = self.fonts.missing_glyphs(self.symbol, bold=True)
        if missing_symbol or self.fonts.missing_glyphs(self.symbol):
            self.substitutions[self.symbol] = c.currency
            self.symbol = c.currency
        self._name()
        self._main_price()
        self._secondary()
        if c.unit_price is not None:
            text = format_unit_price(c.unit_price, c.currency, self.fmt, symbol=self.symbol)
            fitted = _fit(
                text, self.layout.unit, self.fonts, field_name="unit_price", may_truncate=False
            )
            self.fields["unit_price"] = self.canvas.text(fitted, self.layout.unit.box, BLACK)
        if c.promo_text is not None:
            self._promo(c.promo_text)
        if c.url is not None:
            qr = self.canvas.qr(c.url, self.layout.qr, self.layout.qr_min_scale)
            if qr is None:
                self.omitted.append("qr")
            else:
                self.fields["qr"] = qr
        return RenderResult(
            image=self.canvas.image,
            panel=self.spec,
            fields=self.fields,
            truncated=tuple(self.truncated),
            omitted=tuple(self.omitted),
            substitutions=self.substitutions,
        )

    def _money(self, amount: Decimal) -> str:
        return format_money(amount, self.content.currency, self.fmt, symbol=self.symbol)

    def _name(self) -> None:
        slot = self.layout.name
        fitted = _fit(self.content.name, slot, self.fonts, field_name="name", may_truncate=True)
        self.fields["name"] = self.canvas.text(fitted, slot.box, BLACK, bold=slot.bold)
        if fitted.truncated:
            self.truncated.append("name")

    def _main_price(self) -> None:
        """The promo price in red when there is one, else the price in black."""
        c, slot = self.content, self.layout.price
        promo = c.promo_price
        key = "price" if promo is None else "promo_price"
        color = BLACK if promo is None else self.canvas.accent
        text = self._money(c.price if promo is None else promo)
        fitted = _fit(text, slot, self.fonts, field_name=key, may_truncate=False)
        self.fields[key] = self.canvas.text(
            fitted, slot.box, color, valign="middle", bold=slot.bold
        )

    def _secondary(self) -> None:
        """The regular price (struck through, under a promo) and/or the member price."""
        c, sec = self.content, self.layout.secondary
        items: list[tuple[str, str, int, str | None]] = []
        if c.promo_price is not None:
            items.append(("price", self._money(c.price), BLACK, None))
        if c.member_price is not None:
            bare = self._money(c.member_price)
            items.append(("member_price", f"{c.member_label} {bare}", self.canvas.accent, bare))
        gap = 8
        slot_w = sec.box.w if len(items) <= 1 else (sec.box.w - gap) // 2
        for i, (key, text, color, bare_text) in enumerate(items):
            slot = replace(
                sec, box=Box(sec.box.x + i * (slot_w + gap), sec.box.y, slot_w, sec.box.h)
            )
            try:
                fitted = _fit(text, slot, self.fonts, field_name=key, may_truncate=False)
            except PriceDoesNotFit:
                if bare_text is None:
                    raise
                # Drop the "Member" label before giving up; the price itself is never cut.
                fitted = _fit(bare_text, slot, self.fonts, field_name=key, may_truncate=False)
                self.truncated.append("member_label")
            align: Literal["left", "right"] = "right" if i == 1 else "left"
            render = self.canvas.text(fitted, slot.box, color, align=align, bold=slot.bold)
            self.fields[key] = render
            if key == "price":
                self.canvas.strike(render)

    def _promo(self, text: str) -> None:
        band, slot = self.layout.promo_band, self.layout.promo
        if band is not None:
            self.canvas.draw.rectangle(
                (band.x, band.y, band.right - 1, band.bottom - 1), fill=self.canvas.band
            )
        fitted = _fit(text, slot, self.fonts, field_name="promo_text", may_truncate=True)
        color = self.canvas.band_text if band is not None else self.canvas.accent
        self.fields["promo_text"] = self.canvas.text(
            fitted, slot.box, color, align="center", valign="middle"
        )
        if fitted.truncated:
            self.truncated.append("promo_text")

    def _missing_glyphs(self) -> dict[str, list[str]]:
        """Per text field, the characters no font of the set can draw."""
        c, fonts = self.content, self.fonts
        texts = {
            "name": fonts.missing_glyphs(c.name, bold=self.layout.name.bold),
            "promo_text": fonts.missing_glyphs(c.promo_text or ""),
            "member_label": fonts.missing_glyphs(
                c.member_label if c.member_price is not None else "", bold=True
            ),
            "unit": fonts.missing_glyphs(c.unit_price.unit if c.unit_price is not None else ""),
        }
        return {name: chars for name, chars in texts.items() if chars}


# --- encodings ------------------------------------------------------------------------------


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
