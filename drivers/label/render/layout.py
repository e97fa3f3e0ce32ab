"""Panels, inks and where each field goes: the layouts for the common sizes, scaled to others."""

from __future__ import annotations

from dataclasses import dataclass, replace

from drivers.label.tagtypes import Palette

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
