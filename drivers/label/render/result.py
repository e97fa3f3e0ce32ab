"""What a render returns, and why it may refuse to draw."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image
from pydantic import JsonValue

from core.errors import StoregwError, StrEnum
from core.events import JsonObject
from drivers.label.render.layout import PanelSpec


class RenderProblem(StrEnum):
    PRICE_DOES_NOT_FIT = "price_does_not_fit"
    UNRENDERABLE_TEXT = "unrenderable_text"


class RenderError(StoregwError):
    """The content cannot be drawn on this panel; ``code`` says why."""


class PriceDoesNotFit(RenderError):
    """A money field does not fit even at its smallest font size; money is never cut."""

    def __init__(self, field_name: str, text: str, min_size: int, width: int) -> None:
        super().__init__(
            RenderProblem.PRICE_DOES_NOT_FIT,
            f"{field_name} {text!r} does not fit in {width} px even at {min_size} px font size",
        )
        self.field_name = field_name
        self.text = text


class UnrenderableText(RenderError):
    """A text has characters no installed font can draw; drawing it would show boxes."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        where = "; ".join(f"{name}: {' '.join(chars)}" for name, chars in missing.items())
        super().__init__(RenderProblem.UNRENDERABLE_TEXT, f"no installed font can draw {where}")
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
