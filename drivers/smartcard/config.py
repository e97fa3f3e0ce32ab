"""Settings of a PC/SC smart-card device entry.

Example::

    [[devices]]
    id = "checkout-1-card"
    kind = "smartcard"
    reader = "ACR1252"              # optional; every real reader when absent
    member_aid = "F05354475701"     # optional; SELECT this applet, then read the member number
    member_length = 16              # optional; READ BINARY Le (whole file when absent)

``reader`` is matched case-insensitively against the full PC/SC reader name: a pattern with
``*``, ``?`` or ``[`` is a shell glob (``"*00 01"``), anything else a substring
(``"ACR122"``). Globs and substrings are what technicians can read off ``pcsc_scan``
without learning regex escaping for the spaces and brackets reader names contain.

vsmartcard's virtual readers (``Virtual PCD 00 00``) are never picked by default: vpcd lets
anyone who reaches its TCP port present a "card", so they are watched only when ``reader``
names them, i.e. the pattern itself says ``virtual`` (``"Virtual PCD"``,
``"virtual pcd*01"``). A pattern like ``"*"`` or ``"*00 01"`` still skips them.

The member number is read after ``SELECT`` by AID with ``READ BINARY`` (``member_offset``,
``member_length``), or with the command in ``member_apdu`` for applets that hand it out
differently (e.g. a proprietary GET DATA). The answer must be ASCII digits, optionally
right-padded with ``00``, ``FF`` or spaces. A card without the applet (``6A82``) is reported
as a card without ``member_no``, not as an error.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.base import DeviceConfig
from drivers.smartcard.codec import CodecError, hexstr, parse_hex, read_binary

_GLOB_CHARS = frozenset("*?[")
VIRTUAL_READER_PREFIX = "virtual pcd"
"""How vpcd names its readers (reader.conf ``FRIENDLYNAME "Virtual PCD"``), case-folded."""


def is_virtual_reader(name: str) -> bool:
    """A vsmartcard vpcd reader: a TCP port that plays card reader (tests and demos only)."""
    return name.casefold().startswith(VIRTUAL_READER_PREFIX)


def _hex_field(value: str, what: str, min_len: int, max_len: int) -> str:
    try:
        raw = parse_hex(value)
    except CodecError:
        raise ValueError(f"{what} must be hex, e.g. 'F05354475701'") from None
    if not min_len <= len(raw) <= max_len:
        raise ValueError(f"{what} must have {min_len} to {max_len} bytes, not {len(raw)}")
    return hexstr(raw)


class SmartcardConfig(DeviceConfig):
    """PC/SC readers (USB CCID, or vsmartcard's virtual readers in tests and demos)."""

    kind: Literal["smartcard"] = "smartcard"
    reader: str | None = Field(default=None, min_length=1, max_length=200)
    """Reader name pattern: glob when it has * ? [, else substring; case-insensitive.
    Virtual (vpcd) readers only when the pattern says ``virtual``."""
    member_aid: str | None = None
    """AID of the member-card applet (hex, 5-16 bytes); no member number is read without it."""
    member_apdu: str | None = None
    """Command (hex) that returns the member number after SELECT; READ BINARY when absent."""
    member_offset: int = Field(default=0, ge=0, le=0x7FFF)
    member_length: int | None = Field(default=None, ge=1, le=256)
    """READ BINARY Le; absent means Le 00: the card returns what the file holds (up to 256)."""
    apdu_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """How long a card may take to answer one command before it is reported as mute."""

    @field_validator("member_aid")
    @classmethod
    def _check_aid(cls, value: str | None) -> str | None:
        return None if value is None else _hex_field(value, "member_aid", 5, 16)

    @field_validator("member_apdu")
    @classmethod
    def _check_apdu(cls, value: str | None) -> str | None:
        return None if value is None else _hex_field(value, "member_apdu", 4, 261)

    @model_validator(mode="after")
    def _member_settings(self) -> SmartcardConfig:
        touched = self.member_apdu is not None or self.member_length is not None
        if (touched or self.member_offset) and self.member_aid is None:
            raise ValueError("member_apdu, member_offset and member_length need member_aid")
        if self.member_apdu is not None and (self.member_length is not None or self.member_offset):
            raise ValueError("member_apdu replaces READ BINARY: drop member_offset/member_length")
        return self

    def matches_reader(self, name: str) -> bool:
        candidate = name.casefold()
        if is_virtual_reader(name) and (
            self.reader is None or "virtual" not in self.reader.casefold()
        ):
            return False  # a vpcd reader is a network port, never picked by accident
        if self.reader is None:
            return True
        pattern = self.reader.casefold()
        if _GLOB_CHARS & set(pattern):
            return fnmatch.fnmatchcase(candidate, pattern)
        return pattern in candidate

    @property
    def member_aid_bytes(self) -> bytes | None:
        return None if self.member_aid is None else bytes.fromhex(self.member_aid)

    @property
    def member_command(self) -> bytes | None:
        """The command that reads the member number once the applet is selected."""
        if self.member_aid is None:
            return None
        if self.member_apdu is not None:
            return bytes.fromhex(self.member_apdu)
        return read_binary(self.member_offset, self.member_length)
