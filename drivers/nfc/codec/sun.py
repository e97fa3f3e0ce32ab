"""NTAG 424 DNA Secure Unique NFC (SUN) messages, AES mode, as NXP AN12196 describes them.

The tag fills two URL parameters at every read:

* ``e``: PICCData encrypted with AES-128-CBC (IV zero) under SDMMetaReadKey:
  ``PICCDataTag (1) || UID (7) || SDMReadCtr (3, least significant byte first) || padding``;
  PICCDataTag C7h says UID and counter are mirrored and the UID is 7 bytes.
* ``c``: SDMMAC, the AES-CMAC under the session key
  ``KSesSDMFileReadMAC = CMAC(SDMFileReadKey, 3C C3 00 01 00 80 || UID || SDMReadCtr)``
  of the file bytes between SDMMACInputOffset and SDMMACOffset (none when they are equal, the
  usual choice), truncated to the 8 bytes at odd positions.

The counter is inside the MAC, so unlike the NTAG21x mirror it cannot be altered; a server that
refuses counters not greater than the last seen refuses every replay.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from pydantic import BaseModel, ConfigDict

from drivers.nfc.codec.errors import StickerSignatureError

SV2_PREFIX: Final = bytes.fromhex("3CC300010080")
PICC_TAG_UID: Final = 0x80
PICC_TAG_COUNTER: Final = 0x40
PICC_TAG_UID_LENGTH: Final = 0x0F


class PiccData(BaseModel):
    """What a decrypted PICCData says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: int
    uid: bytes
    counter: int


def aes_cmac(key: bytes, message: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(message)
    return c.finalize()


def _aes_cbc(key: bytes, data: bytes, *, decrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def decrypt_picc_data(meta_key: bytes, picc_data: bytes) -> PiccData:
    """Open ``e``; raises :class:`StickerSignatureError` when it is not a PICCData."""
    if len(picc_data) != 16:
        raise StickerSignatureError("encrypted PICCData is 16 bytes (AES mode)")
    plain = _aes_cbc(meta_key, picc_data, decrypt=True)
    tag = plain[0]
    uid_len = tag & PICC_TAG_UID_LENGTH
    if not (tag & PICC_TAG_UID and tag & PICC_TAG_COUNTER and uid_len == 7):
        raise StickerSignatureError("PICCData does not open with this key (or mirrors no UID)")
    uid = plain[1:8]
    counter = int.from_bytes(plain[8:11], "little")
    return PiccData(tag=tag, uid=uid, counter=counter)


def session_mac_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    return aes_cmac(file_key, SV2_PREFIX + uid + counter.to_bytes(3, "little"))


def sdm_mac(file_key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """SDMMAC: the session key's CMAC of ``mac_input``, the 8 bytes at odd positions."""
    return aes_cmac(session_mac_key(file_key, uid, counter), mac_input)[1::2]


def verify_sun(
    meta_key: bytes,
    file_key_for: Callable[[bytes], bytes],
    picc_data_hex: str,
    mac_hex: str,
    mac_input: bytes = b"",
) -> PiccData:
    """The UID and counter of a genuine SUN message; raises :class:`StickerSignatureError`.

    ``file_key_for(uid)`` gives the tag's SDMFileReadKey (diversified per UID, usually).
    """
    try:
        picc_data, mac = bytes.fromhex(picc_data_hex), bytes.fromhex(mac_hex)
    except ValueError:
        raise StickerSignatureError("SUN parameters are not hexadecimal") from None
    picc = decrypt_picc_data(meta_key, picc_data)
    expected = sdm_mac(file_key_for(picc.uid), picc.uid, picc.counter, mac_input)
    if len(mac) != 8 or not hmac.compare_digest(expected, mac):
        raise StickerSignatureError("SDMMAC does not match: forged, altered or another tag's")
    return picc


def sun_message(
    meta_key: bytes, file_key: bytes, uid: bytes, counter: int, *, padding: bytes | None = None
) -> tuple[str, str]:
    """(``e``, ``c``) as an NTAG 424 DNA with these keys would answer (uppercase hex)."""
    if len(uid) != 7:
        raise ValueError("an NTAG 424 DNA UID is 7 bytes")
    pad = padding if padding is not None else os.urandom(5)
    plain = bytes([0xC7]) + uid + counter.to_bytes(3, "little") + pad
    enc = _aes_cbc(meta_key, plain, decrypt=False)
    return enc.hex().upper(), sdm_mac(file_key, uid, counter).hex().upper()
