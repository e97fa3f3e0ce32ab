"""Keyboard layouts as data: which character a key position types at each shift level.

A HID scanner sends key *positions* (USB usages, which Linux turns into ``KEY_*`` codes),
chosen for the keyboard country it is configured for. To read it we need the same table:
``layouts/<name>.json`` maps ``KEY_*`` names to ``[base, shift, altgr, shift+altgr]``
(shorter lists leave levels empty). ``"dead:^"`` is a dead key: it types nothing by itself and
modifies the next character. The tables are taken from xkeyboard-config (``symbols/us``,
``symbols/de``, ``symbols/fr``; commit in each file's ``sources``), limited to what scanners
type: the main block, space and the keypad.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict

LayoutName = Literal["us", "de", "fr"]
LAYOUTS: tuple[LayoutName, ...] = ("us", "de", "fr")
DEAD = "dead:"
CONTROLLABLE = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"
"""Ctrl + the key for one of these types ASCII 0x00-0x1F (Ctrl+] = GS, FNC1 in GS1 codes)."""


class Layout(BaseModel):
    """One layout; ``levels[code]`` holds the key's characters (``""`` for none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    altgr: bool
    """Right Alt is AltGr (level 3) rather than a second Alt."""
    levels: dict[int, tuple[str, ...]]

    def char(self, code: int, level: int) -> str:
        """The character (or ``dead:x``) at ``level``; ``""`` when the key has none there."""
        chars = self.levels.get(code, ())
        return chars[level] if level < len(chars) else ""


def _codes() -> dict[str, int]:
    from evdev import ecodes

    return {name: code for name, code in ecodes.ecodes.items() if name.startswith("KEY_")}


@functools.cache
def load(name: LayoutName) -> Layout:
    """The named layout; cached (the tables never change at run time)."""
    raw = json.loads(
        resources.files("drivers.hid_scanner").joinpath(f"layouts/{name}.json").read_text("utf-8")
    )
    codes = _codes()
    levels = {codes[key]: tuple(chars) for key, chars in raw["keys"].items()}
    return Layout(
        name=raw["name"],
        description=raw["description"],
        altgr=raw["altgr"],
        levels=levels,
    )


def key_name(code: int) -> str:
    """``KEY_F5`` for 63: how a technician finds the key in evtest or the scanner manual."""
    from evdev import ecodes

    name = ecodes.KEY.get(code)
    if isinstance(name, (list, tuple)):
        name = name[0]
    return str(name) if name else f"key {code}"


@functools.cache
def us_base() -> dict[int, tuple[str, ...]]:
    """US characters by position: Ctrl+key falls back on them (Ctrl+] is the ]-key on any
    layout, where e.g. DE has ``+`` at that position and ``]`` only on AltGr+9)."""
    return load("us").levels


def control_char(char: str) -> str | None:
    """``Ctrl`` + a key typing ``char`` -> its ASCII control character, else None."""
    upper = char.upper()
    if len(upper) == 1 and upper in CONTROLLABLE:
        return chr(ord(upper) & 0x1F)
    return None
