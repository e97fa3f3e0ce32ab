"""What every emulated tag shares: the answers on the wire, UIDs, the Type A tag protocol."""

from __future__ import annotations

import secrets

ACK = b"\x0a"
NAK = b"\x00"
"""NTAG21x 4-bit NAK "invalid argument", sent as one byte over nfcpy's udp link."""

NDEF_AID_V2 = bytes.fromhex("D2760000850101")
SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_PARAMS = b"\x6b\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_NOT_ALLOWED = b"\x69\x82"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"
SW_NOT_ENOUGH_SPACE = b"\x6a\x84"


def random_uid(length: int = 7) -> bytes:
    """A random NXP-style UID (first byte 0x04, the NXP manufacturer code)."""
    return b"\x04" + secrets.token_bytes(length - 1)


def parse_uid(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "").replace(" ", ""))
