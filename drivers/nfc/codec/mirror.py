"""The NTAG213/215/216 UID and NFC counter ASCII mirror (NXP datasheet, CFG0 and ACCESS).

CFG0 is ``MIRROR, RFUI, MIRROR_PAGE, AUTH0``. The MIRROR byte holds MIRROR_CONF in bits 7-6
(00 off, 01 UID, 10 NFC counter, 11 UID and counter), MIRROR_BYTE in bits 5-4 (the byte in
MIRROR_PAGE where the mirror starts) and STRG_MOD_EN in bit 2 (factory 1). MIRROR_PAGE 00h
disables the mirror; it starts at a user page (04h or later) and the whole mirror must lie in
user memory. ACCESS (CFG1 byte 0) bit 4 is NFC_CNT_EN: the 24-bit NFC counter counts the first
READ or FAST_READ of every activation. The tag returns the UID as 14 uppercase ASCII hex
characters, then ``x``, then the counter as 6 (most significant byte first): ``UIDxCNT``, 21
bytes in all. READ_CNT (39h, address 02h) answers the counter as 3 bytes, least significant
first.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from pydantic import BaseModel, ConfigDict

from drivers.nfc.codec.tags import NtagSpec

UID_CHARS: Final = 14
COUNTER_CHARS: Final = 6
SEPARATOR: Final = b"x"
BOTH_CHARS: Final = UID_CHARS + 1 + COUNTER_CHARS
PLACEHOLDER: Final = b"0" * UID_CHARS + SEPARATOR + b"0" * COUNTER_CHARS
"""What the writer stores where the tag mirrors ``UIDxCNT`` (the datasheet's example too)."""
STRG_MOD_EN: Final = 0x04
NFC_CNT_EN: Final = 0x10
COUNTER_MAX: Final = 0xFFFFFF
READ_CNT: Final = 0x39
FIRST_USER_PAGE: Final = 4


class MirrorConf(IntEnum):
    OFF = 0
    UID = 1
    COUNTER = 2
    BOTH = 3


def mirror_length(conf: MirrorConf) -> int:
    return {
        MirrorConf.OFF: 0,
        MirrorConf.UID: UID_CHARS,
        MirrorConf.COUNTER: COUNTER_CHARS,
        MirrorConf.BOTH: BOTH_CHARS,
    }[conf]


class Mirror(BaseModel):
    """What CFG0 says about the mirror."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conf: MirrorConf
    page: int
    """MIRROR_PAGE; 0 disables the mirror."""
    byte: int
    """MIRROR_BYTE, 0-3."""
    strg_mod_en: bool = True

    @property
    def active(self) -> bool:
        return self.conf != MirrorConf.OFF and self.page != 0

    @property
    def start(self) -> int:
        """Byte address of the first mirrored character."""
        return self.page * 4 + self.byte

    def mirror_byte(self) -> int:
        return (self.conf << 6) | (self.byte << 4) | (STRG_MOD_EN if self.strg_mod_en else 0)


def decode_mirror(cfg0: bytes) -> Mirror:
    """The mirror of a CFG0 page (4 bytes)."""
    mb = cfg0[0]
    return Mirror(
        conf=MirrorConf(mb >> 6),
        page=cfg0[2],
        byte=(mb >> 4) & 0x03,
        strg_mod_en=bool(mb & STRG_MOD_EN),
    )


def mirror_problem(mirror: Mirror, spec: NtagSpec) -> str | None:
    """Why an NTAG21x would not take this mirror configuration; None when it is valid."""
    if not mirror.active:
        return None
    if mirror.page < FIRST_USER_PAGE:
        return f"MIRROR_PAGE {mirror.page:#04x} is below the user memory (starts at 04h)"
    end = mirror.start + mirror_length(mirror.conf)
    user_end = spec.dynamic_lock_page * 4  # user memory ends where the dynamic lock page starts
    if end > user_end:
        return (
            f"the {mirror.conf.name} mirror at page {mirror.page:#04x} byte {mirror.byte} runs "
            f"past the user memory of the {spec.model} "
            f"(last user page {spec.dynamic_lock_page - 1:#04x})"
        )
    return None


def mirror_at(offset: int, conf: MirrorConf = MirrorConf.BOTH) -> Mirror:
    """The mirror that starts at byte address ``offset`` of the tag memory."""
    return Mirror(conf=conf, page=offset // 4, byte=offset % 4)


def mirror_text(uid: bytes, counter: int, conf: MirrorConf = MirrorConf.BOTH) -> bytes:
    """The ASCII the tag returns: ``04E141124C2880x003F31`` for both."""
    if not 0 <= counter <= COUNTER_MAX:
        raise ValueError("the NFC counter is 24 bits")
    uid_text = uid.hex().upper().encode("ascii")
    counter_text = counter.to_bytes(3, "big").hex().upper().encode("ascii")
    if conf == MirrorConf.UID:
        return uid_text
    if conf == MirrorConf.COUNTER:
        return counter_text
    if conf == MirrorConf.BOTH:
        return uid_text + SEPARATOR + counter_text
    return b""


def parse_mirror_text(text: str) -> tuple[bytes, int]:
    """(UID, counter) of a ``UIDxCNT`` mirror; raises ValueError for anything else."""
    if len(text) != BOTH_CHARS or text[UID_CHARS] != "x":
        raise ValueError("a UID and counter mirror is 14 hex characters, 'x' and 6 more")
    uid_text, counter_text = text[:UID_CHARS], text[UID_CHARS + 1 :]
    hexdigits = set("0123456789ABCDEFabcdef")
    if not set(uid_text) <= hexdigits or not set(counter_text) <= hexdigits:
        raise ValueError("the mirror is not hexadecimal")
    return bytes.fromhex(uid_text), int(counter_text, 16)


def placeholder_mirror(area: bytes, message: bytes) -> Mirror:
    """The mirror over the ``UIDxCNT`` placeholder that ends ``message`` (a sticker URL's NDEF
    message), as it lies in ``area``, the Type 2 data area read from page 4 on."""
    if not message.endswith(PLACEHOLDER):
        raise ValueError("the NDEF message does not end in the mirror placeholder")
    at = area.find(message)
    if at < 0:
        raise ValueError("the NDEF message is not in the data area")
    return mirror_at(FIRST_USER_PAGE * 4 + at + len(message) - len(PLACEHOLDER))
