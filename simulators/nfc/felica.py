"""A FeliCa (Type 3) tag's block memory, as nfcpy's ``Type3TagEmulation`` reads it."""

from __future__ import annotations

import secrets

from simulators.nfc.frames import parse_uid


class EmulatedFelica:
    """A FeliCa (NFC Forum Type 3) tag's NDEF blocks; nfcpy's ``Type3TagEmulation`` answers.

    The PMm carries ``ic_code`` (0x01: nfcpy names it "FeliCa Standard (RC-S915)") and slow
    response-time parameters (0xBF: ~77 ms per block), so a reader's timeouts are generous
    enough for a simulator on a busy thread.
    """

    SYSTEM_CODE = b"\x12\xfc"

    def __init__(
        self,
        idm: bytes | str | None = None,
        *,
        ndef: bytes | None = None,
        blocks: int = 64,
        ic_code: int = 0x01,
        writable: bool = True,
    ) -> None:
        raw = (
            parse_uid(idm)
            if isinstance(idm, str)
            else (idm or b"\x01\x2e" + secrets.token_bytes(6))
        )
        if len(raw) != 8 or raw[:2] == b"\x01\xfe":
            raise ValueError("IDm is 8 bytes and must not start 01FE (that means NFC-DEP)")
        self.idm = bytes(raw)
        self.pmm = bytes([0x03, ic_code]) + b"\xbf" * 6
        self.nmaxb = blocks
        self.writable = writable
        self.blocks = bytearray(16 * (blocks + 1))
        self._set_attributes(0)
        if ndef is not None:
            self.ndef = ndef

    @property
    def uid(self) -> bytes:
        return self.idm

    @property
    def sensf_res(self) -> bytes:
        return b"\x01" + self.idm + self.pmm + self.SYSTEM_CODE

    def _set_attributes(self, length: int, writef: int = 0) -> None:
        attr = bytearray(16)
        attr[0] = 0x10  # mapping version 1.0
        attr[1] = 4  # blocks per read
        attr[2] = 4  # blocks per write
        attr[3:5] = self.nmaxb.to_bytes(2, "big")
        attr[9] = writef
        attr[10] = 0x01 if self.writable else 0x00
        attr[11:14] = length.to_bytes(3, "big")
        attr[14:16] = sum(attr[0:14]).to_bytes(2, "big")
        self.blocks[0:16] = attr

    @property
    def ndef(self) -> bytes:
        length = int.from_bytes(self.blocks[11:14], "big")
        return bytes(self.blocks[16 : 16 + length])

    @ndef.setter
    def ndef(self, message: bytes) -> None:
        if len(message) > 16 * self.nmaxb:
            raise ValueError(f"{len(message)} bytes exceed {self.nmaxb} blocks")
        self.blocks[16 : 16 + len(message)] = message
        self._set_attributes(len(message))

    def read_block(self, number: int, rb: bool, re: bool) -> bytes | None:
        if number > self.nmaxb:
            return None
        return bytes(self.blocks[number * 16 : number * 16 + 16])

    def write_block(self, number: int, data: bytes, wb: bool, we: bool) -> bool:
        if not self.writable or number > self.nmaxb:
            return False
        self.blocks[number * 16 : number * 16 + 16] = data
        return True
