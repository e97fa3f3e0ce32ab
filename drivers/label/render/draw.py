"""One render of a product: name, prices, unit price, promo line and QR code, in that order."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from drivers.label.content import (
    PriceFormat,
    ProductContent,
    currency_symbol,
    format_money,
    format_unit_price,
)
from drivers.label.fonts import FontSet, font_default
from drivers.label.render.canvas import Canvas
from drivers.label.render.fitting import fit_text
from drivers.label.render.layout import BLACK, PANELS, Box, Colors, Layout, PanelSpec, layout_for
from drivers.label.render.result import (
    FieldRender,
    PriceDoesNotFit,
    RenderResult,
    UnrenderableText,
)

log = logging.getLogger(__name__)

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
            content, spec, layout, fonts, price_format or PriceFormat(), Canvas(spec, colors)
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
    canvas: Canvas
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
            fitted = fit_text(
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
        fitted = fit_text(self.content.name, slot, self.fonts, field_name="name", may_truncate=True)
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
        fitted = fit_text(text, slot, self.fonts, field_name=key, may_truncate=False)
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
                fitted = fit_text(text, slot, self.fonts, field_name=key, may_truncate=False)
            except PriceDoesNotFit:
                if bare_text is None:
                    raise
                # Drop the "Member" label before giving up; the price itself is never cut.
                fitted = fit_text(bare_text, slot, self.fonts, field_name=key, may_truncate=False)
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
        fitted = fit_text(text, slot, self.fonts, field_name="promo_text", may_truncate=True)
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
