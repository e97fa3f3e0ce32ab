"""Key events -> typed text, with a layout's table: modifiers, CapsLock, dead keys, Ctrl and
Alt+keypad codes. Pure; one instance per open device.

What scanners send (their keyboard-wedge manuals) and how it is read here:

* Characters as key positions for the configured keyboard country, Shift for upper case and
  AltGr (Right Alt; on Windows-targeted scanners often Ctrl+Left Alt) for level 3 (``@`` is
  AltGr+Q on DE, AltGr+0 on FR).
* Control characters such as GS (FNC1 in GS1 codes) in "Control + ASCII" mode as Ctrl+key:
  Ctrl+] is GS. The key is looked up in the layout and, failing that, by its US position.
* Any character in "Alt mode" / "emulate keypad" as Alt held + decimal keypad digits, taken on
  Alt's release: Alt+0029 is GS. A leading 0 means Windows-1252, none means code page 437
  (as Windows reads them; both agree below 128).
* Enter / keypad Enter type CR, Tab types TAB (the framer decides which one ends a code).

CapsLock (the scanner's own presses, or the device LED state at open) inverts Shift on keys
whose shifted character is the upper case of their base letter (letters, and ä/ö/ü on DE).
Keypad digits are digits whatever NumLock says: a scanner uses the keypad only for digits.
A key the layout has no character for (F-keys, arrows, Alt+letter) types :data:`UNMAPPED`, and
its name is kept in :attr:`KeyDecoder.unmapped` so the code can be rejected with the key named.
"""

from __future__ import annotations

import unicodedata

from evdev import ecodes

from drivers.hid_scanner.events import EV_KEY, EV_LED, KEY_PRESS, KEY_RELEASE, LED_CAPSL, InputEvent
from drivers.hid_scanner.layouts import DEAD, Layout, control_char, key_name, us_base

UNMAPPED = "\ue000"
"""A private-use character that no layout types; marks where an unmapped key was pressed."""

SHIFTS = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT})
CTRLS = frozenset({ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL})
IGNORED = frozenset(
    {ecodes.KEY_LEFTMETA, ecodes.KEY_RIGHTMETA, ecodes.KEY_NUMLOCK, ecodes.KEY_SCROLLLOCK}
)
ENTERS = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER})
KEYPAD_DIGITS: dict[int, str] = {getattr(ecodes, f"KEY_KP{d}"): str(d) for d in range(10)}
COMBINING: dict[str, str] = {
    "^": "\u0302",
    "\u00b4": "\u0301",  # acute accent
    "`": "\u0300",
    "\u00a8": "\u0308",  # diaeresis
    "~": "\u0303",
}
MAX_UNMAPPED = 16


class KeyDecoder:
    """``feed(event)`` returns the text that event typed (usually one character, or "")."""

    def __init__(self, layout: Layout, *, caps_lock: bool = False) -> None:
        self.layout = layout
        self.caps_lock = caps_lock
        self.unmapped: list[str] = []
        """Names of unmapped keys typed since the caller last took them (at most 16)."""
        self._held: set[int] = set()
        self._dead = ""
        self._alt_value: int | None = None
        """The Alt+keypad code so far, mod 256 as Windows takes it (bounded however long)."""
        self._alt_ansi = False
        """It began with 0: Windows-1252 rather than code page 437."""

    def reset(self) -> None:
        """Forget held keys and half-typed sequences (after the kernel dropped events)."""
        self._held.clear()
        self._dead = ""
        self._alt_value = None

    # --- modifiers ---------------------------------------------------------------------------

    @property
    def _shift(self) -> bool:
        return bool(self._held & SHIFTS)

    @property
    def _ctrl(self) -> bool:
        return bool(self._held & CTRLS)

    @property
    def _alt(self) -> bool:
        alts = {ecodes.KEY_LEFTALT}
        if not self.layout.altgr:
            alts.add(ecodes.KEY_RIGHTALT)  # no AltGr on this layout: Right Alt is a second Alt
        return bool(self._held & alts)

    @property
    def _altgr(self) -> bool:
        if not self.layout.altgr:
            return False
        held = self._held
        return ecodes.KEY_RIGHTALT in held or (self._ctrl and ecodes.KEY_LEFTALT in held)

    def _is_modifier(self, code: int) -> bool:
        return code in SHIFTS or code in CTRLS or code in (ecodes.KEY_LEFTALT, ecodes.KEY_RIGHTALT)

    # --- events ------------------------------------------------------------------------------

    def feed(self, event: InputEvent) -> str:
        if event.type == EV_LED and event.code == LED_CAPSL:
            self.caps_lock = event.value != 0
            return ""
        if event.type != EV_KEY or event.code in IGNORED:
            return ""
        code = event.code
        if self._is_modifier(code):
            return self._modifier(code, event.value)
        if event.value != KEY_PRESS:  # releases, and autorepeat of a key held too long
            return ""
        if code == ecodes.KEY_CAPSLOCK:
            self.caps_lock = not self.caps_lock
            return ""
        return self._press(code)

    def _modifier(self, code: int, value: int) -> str:
        if value == KEY_PRESS:
            self._held.add(code)
        elif value == KEY_RELEASE:
            was_alt = self._alt
            self._held.discard(code)
            if was_alt and not self._alt and self._alt_value is not None:
                return self._alt_code()
        return ""

    def _alt_code(self) -> str:
        value, self._alt_value = self._alt_value or 0, None
        encoding = "cp1252" if self._alt_ansi else "cp437"
        return self._typed(bytes([value]).decode(encoding, errors="replace"))

    def _press(self, code: int) -> str:  # noqa: PLR0911 - one return per kind of key
        if code in ENTERS:
            return self._typed("\r")
        if code == ecodes.KEY_TAB:
            return self._typed("\t")
        if self._alt and not self._altgr:
            if code in KEYPAD_DIGITS and not self._ctrl:
                digit = int(KEYPAD_DIGITS[code])
                if self._alt_value is None:
                    self._alt_ansi = digit == 0
                self._alt_value = ((self._alt_value or 0) * 10 + digit) % 256
                return ""
            return self._unmapped(code)
        if self._ctrl and not self._altgr:
            return self._control(code)
        char = self.layout.char(code, self._level(code))
        if not char:
            return self._unmapped(code)
        if char.startswith(DEAD):
            pending, self._dead = self._dead, char.removeprefix(DEAD)
            return pending
        return self._typed(char)

    def _level(self, code: int) -> int:
        shift = self._shift
        base, shifted = self.layout.char(code, 0), self.layout.char(code, 1)
        if self.caps_lock and base.isalpha() and shifted == base.upper():
            shift = not shift
        return (1 if shift else 0) + (2 if self._altgr else 0)

    def _control(self, code: int) -> str:
        level = 1 if self._shift else 0
        us = us_base().get(code, ())
        for char in (self.layout.char(code, level), us[level] if level < len(us) else ""):
            control = control_char(char) if char and not char.startswith(DEAD) else None
            if control is not None:
                return self._typed(control)
        return self._unmapped(code)

    def _typed(self, char: str) -> str:
        """``char``, combined with a pending dead key the way Windows and xkb's compose do."""
        accent, self._dead = self._dead, ""
        if not accent:
            return char
        if char == " ":
            return accent
        mark = COMBINING.get(accent)
        composed = unicodedata.normalize("NFC", char + mark) if mark else ""
        return composed if len(composed) == 1 else accent + char

    def _unmapped(self, code: int) -> str:
        if len(self.unmapped) < MAX_UNMAPPED:
            self.unmapped.append(key_name(code))
        self._dead = ""
        return UNMAPPED
