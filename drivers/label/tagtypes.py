"""OpenEPaperLink tag types: a tag's panel size, inks and LED, keyed by the ``hwType`` it reports.

The truth is upstream's ``resources/tagtypes/XX.json`` (XX = hwType as two upper-case hex
digits; fields ``name``, ``width``, ``height``, ``rotatebuffer``, ``bpp``, ``colortable``,
``options``). An AP serves its own copy at ``/tagtypes/XX.json`` (``web.cpp``:
``server.serveStatic("/tagtypes", ...)``; the web UI fetches it the same way in ``main.js``), so
the AP's file wins; ``tagtypes.json`` beside this module is the fallback, vendored from
``OpenEPaperLink/OpenEPaperLink`` at commit ``cdd1cfa950b97218e20ae23b65f8811af6f1741b``
(only e-paper types drawn with white/black/red/yellow, and only the fields we use).

``width``/``height`` are the image the AP expects in ``/imgupload``: the AP decodes the JPEG at
its own size (``makeimage.cpp`` ``jpg2buffer``) and rotates it into the panel buffer itself
(``rotatebuffer``), so we render exactly ``width`` x ``height``.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import StoregwError, StrEnum

Palette = Literal["bw", "bwr", "bwy", "bwry"]
_INKS = frozenset({"white", "black", "red", "yellow", "gray"})
_DIAGONAL = re.compile(r'(\d+(?:[.,]\d+)?)\s*"')


class TagType(BaseModel):
    """What the renderer and the driver need to know about one hwType."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hw_type: int = Field(ge=0, le=0xFF)
    name: str
    width: int = Field(gt=0, le=4096)
    height: int = Field(gt=0, le=4096)
    colors: tuple[str, ...]
    """Ink names from the colortable, e.g. ("white", "black", "red")."""
    led: bool = False
    source: Literal["ap", "vendored"] = "vendored"

    @property
    def palette(self) -> Palette:
        red, yellow = "red" in self.colors, "yellow" in self.colors
        if red and yellow:
            return "bwry"
        if red:
            return "bwr"
        return "bwy" if yellow else "bw"

    @property
    def diagonal(self) -> str | None:
        """The panel diagonal in the type's name ('M3 2.9"' -> "2.9"; 'HS BWRY 2,9"' -> "2.9")."""
        match = _DIAGONAL.search(self.name)
        return None if match is None else match.group(1).replace(",", ".")

    def describe(self) -> str:
        return (
            f'hwType 0x{self.hw_type:02X} "{self.name}" {self.width}x{self.height} {self.palette}'
        )


class TagTypeProblem(StrEnum):
    UNSUPPORTED = "unsupported_tag_type"


class UnsupportedTagType(StoregwError, ValueError):
    """The tag type cannot be drawn by this renderer (segment display, 7-colour panel, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(TagTypeProblem.UNSUPPORTED, message)


def tagtype_path(hw_type: int) -> str:
    """The AP's path for a type: ``/tagtypes/XX.json`` with upper-case hex (``main.js``)."""
    return f"/tagtypes/{hw_type:02X}.json"


def parse_upstream(hw_type: int, payload: Any, *, source: Literal["ap", "vendored"]) -> TagType:
    """Decode an upstream-format tag type file; UnsupportedTagType for ones we cannot draw."""
    if not isinstance(payload, dict):
        raise UnsupportedTagType(f"hwType 0x{hw_type:02X}: tag type file is not a JSON object")
    table = payload.get("colortable")
    colors = tuple(table) if isinstance(table, dict | list) else ()
    if not all(isinstance(c, str) for c in colors):  # a list may hold anything (found by fuzzing)
        colors = ()
    options = payload.get("options")
    if not colors or not set(colors) <= _INKS or not {"white", "black"} <= set(colors):
        raise UnsupportedTagType(
            f"hwType 0x{hw_type:02X} has colours {list(colors)}: "
            "not a white/black(/red/yellow) panel"
        )
    try:
        return TagType(
            hw_type=hw_type,
            name=str(payload.get("name", f"0x{hw_type:02X}")),
            width=payload.get("width"),
            height=payload.get("height"),
            colors=colors,
            led=bool(payload.get("led")) or (isinstance(options, list) and "led" in options),
            source=source,
        )
    except ValidationError as exc:
        raise UnsupportedTagType(
            f"hwType 0x{hw_type:02X}: {exc.error_count()} bad field(s)"
        ) from None


@functools.lru_cache(maxsize=1)
def vendored() -> dict[int, TagType]:
    raw = json.loads(resources.files("drivers.label").joinpath("tagtypes.json").read_text("utf-8"))
    return {
        int(key, 16): parse_upstream(int(key, 16), value, source="vendored")
        for key, value in raw["types"].items()
    }


def lookup(hw_type: int) -> TagType | None:
    """The vendored type for a hwType, or None when upstream has none we can draw."""
    return vendored().get(hw_type)


def upstream_json(tag_type: TagType) -> dict[str, Any]:
    """A tag type back in upstream's file format (what an AP serves; the simulator uses it)."""
    names = {"white": [255, 255, 255], "black": [0, 0, 0], "red": [255, 0, 0]}
    names |= {"yellow": [255, 255, 0], "gray": [128, 128, 128]}
    return {
        "version": 1,
        "name": tag_type.name,
        "width": tag_type.width,
        "height": tag_type.height,
        "rotatebuffer": 0,
        "bpp": 2 if len(tag_type.colors) > 2 else 1,
        "colortable": {c: names[c] for c in tag_type.colors},
        "options": ["led"] if tag_type.led else [],
    }


__all__ = [
    "Palette",
    "TagType",
    "UnsupportedTagType",
    "lookup",
    "parse_upstream",
    "tagtype_path",
    "upstream_json",
    "vendored",
]
