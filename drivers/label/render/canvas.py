"""Drawing on the palette image: fitted text, a strike-through, a QR code."""

from __future__ import annotations

from typing import Literal

from PIL import Image, ImageDraw

from drivers.label.render.fitting import Fitted, line_height, text_width
from drivers.label.render.layout import (
    BLACK,
    PALETTE_RGB,
    RED,
    WHITE,
    YELLOW,
    Box,
    Colors,
    PanelSpec,
)
from drivers.label.render.result import FieldRender


class Canvas:
    """A palette image with the panel's inks, and the three things drawn on it."""

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
        fitted: Fitted,
        box: Box,
        color: int,
        *,
        align: Literal["left", "right", "center"] = "left",
        valign: Literal["top", "middle"] = "top",
        bold: bool = False,
    ) -> FieldRender:
        line_h = line_height(fitted.font, fitted.lines)
        total_h = line_h * len(fitted.lines)
        y = box.y if valign == "top" else box.y + max(0, (box.h - total_h) // 2)
        origin: tuple[int, int] | None = None
        left, top, right, bottom = box.right, box.bottom, box.x, box.y
        for i, line in enumerate(fitted.lines):
            w = text_width(fitted.font, line)
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
