"""A Type 4A tag: ISO-DEP blocks carrying an NDEF application's APDUs."""

from __future__ import annotations

from simulators.nfc.frames import (
    NDEF_AID_V2,
    SW_CLA_NOT_SUPPORTED,
    SW_INS_NOT_SUPPORTED,
    SW_NOT_ALLOWED,
    SW_NOT_ENOUGH_SPACE,
    SW_NOT_FOUND,
    SW_OK,
    SW_WRONG_LENGTH,
    SW_WRONG_PARAMS,
    parse_uid,
    random_uid,
)


class EmulatedType4Tag:
    """An ISO-DEP (Type 4A) tag with an NFC Forum NDEF application (mapping version 2.0)."""

    sens_res = bytes.fromhex("4403")
    sel_res = b"\x20"
    FWI = 8
    """Frame waiting time index: 4096/13.56 MHz * 2**8 = 77 ms, plenty for a thread."""
    MLE = 0xF0
    MLC = 0xF0

    def __init__(
        self,
        uid: bytes | str | None = None,
        *,
        ndef: bytes | None = None,
        capacity: int = 2046,
        writable: bool = True,
    ) -> None:
        raw_uid = parse_uid(uid) if isinstance(uid, str) else (uid or random_uid())
        if len(raw_uid) not in (4, 7):
            raise ValueError("a Type 4A UID is 4 or 7 bytes")
        self.uid = bytes(raw_uid)
        self.capacity = capacity
        self.writable = writable
        self.file = bytearray(capacity + 2)
        self.ndef = ndef if ndef is not None else b""
        self._reset()

    @property
    def ndef(self) -> bytes:
        nlen = int.from_bytes(self.file[0:2], "big")
        return bytes(self.file[2 : 2 + nlen])

    @ndef.setter
    def ndef(self, message: bytes) -> None:
        if len(message) > self.capacity:
            raise ValueError(f"{len(message)} bytes exceed the NDEF file ({self.capacity})")
        self.file[0 : 2 + len(message)] = len(message).to_bytes(2, "big") + message

    @property
    def cc_file(self) -> bytes:
        size = (self.capacity + 2).to_bytes(2, "big")
        return (
            b"\x00\x0f\x20"
            + self.MLE.to_bytes(2, "big")
            + self.MLC.to_bytes(2, "big")
            + b"\x04\x06\xe1\x04"
            + size
            + b"\x00"
            + (b"\x00" if self.writable else b"\xff")
        )

    def _reset(self) -> None:
        self._app_selected = False
        self._selected: str | None = None
        self._chain = bytearray()
        self._last: bytes | None = None

    def activate(self) -> None:
        self._reset()

    def process(self, frame: bytes) -> bytes | None:
        if not frame:
            return None
        pcb = frame[0]
        if pcb == 0xE0:  # RATS: answer ATS with FSCI 8 (256 bytes), FWI, no CID/NAD
            return bytes([0x05, 0x78, 0x80, self.FWI << 4, 0x02])
        if pcb & 0xE2 == 0x02:  # I-block
            return self._i_block(pcb, frame[1:])
        if pcb & 0xE6 == 0xA2:  # R-block
            return self._r_block(pcb)
        if pcb & 0xF7 == 0xC2:  # S(DESELECT)
            self._reset()
            return bytes([0xC2])
        return None

    def _r_block(self, pcb: int) -> bytes:
        if pcb & 0x10 and self._last is not None and self._last[0] & 1 == pcb & 1:
            return self._last  # R(NAK) for our last block: it was lost, send it again
        return bytes([0xA2 | (pcb & 1)])  # otherwise (presence check): R(ACK)

    def _i_block(self, pcb: int, data: bytes) -> bytes:
        self._chain += data
        if pcb & 0x10:  # chaining: acknowledge, wait for the rest
            return bytes([0xA2 | (pcb & 1)])
        apdu, self._chain = bytes(self._chain), bytearray()
        self._last = bytes([0x02 | (pcb & 1)]) + self.apdu(apdu)
        return self._last

    def apdu(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[0:4]
        body = apdu[4:]
        if cla != 0x00:
            return SW_CLA_NOT_SUPPORTED
        if ins == 0xA4:
            return self._select(p1, p2, body)
        if ins == 0xB0:
            return self._read_binary((p1 << 8) | p2, body)
        if ins == 0xD6:
            return self._update_binary((p1 << 8) | p2, body)
        return SW_INS_NOT_SUPPORTED

    def _select(self, p1: int, p2: int, body: bytes) -> bytes:
        if not body:
            return SW_WRONG_LENGTH
        data = body[1 : 1 + body[0]]
        if p1 == 0x04:
            self._app_selected = data == NDEF_AID_V2
            self._selected = None
            return SW_OK if self._app_selected else SW_NOT_FOUND
        if p1 == 0x00 and self._app_selected:
            if data == b"\xe1\x03":
                self._selected = "cc"
                return SW_OK
            if data == b"\xe1\x04":
                self._selected = "ndef"
                return SW_OK
        return SW_NOT_FOUND

    def _read_binary(self, offset: int, body: bytes) -> bytes:
        if self._selected is None:
            return SW_NOT_ALLOWED
        content = self.cc_file if self._selected == "cc" else bytes(self.file)
        le = body[0] if body else 0
        le = le or 256
        if offset > len(content):
            return SW_WRONG_PARAMS
        return content[offset : offset + min(le, self.MLE)] + SW_OK

    def _update_binary(self, offset: int, body: bytes) -> bytes:
        if self._selected != "ndef" or not self.writable:
            return SW_NOT_ALLOWED
        if not body or len(body) != 1 + body[0]:
            return SW_WRONG_LENGTH
        data = body[1:]
        if offset + len(data) > len(self.file):
            return SW_NOT_ENOUGH_SPACE
        self.file[offset : offset + len(data)] = data
        return SW_OK
