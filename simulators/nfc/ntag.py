"""An NTAG213/215/216 memory map with the commands nfcpy and phones use, the NFC counter and
the UID/counter ASCII mirror (:mod:`drivers.nfc.codec.mirror` has the datasheet's rules)."""

from __future__ import annotations

from collections.abc import Callable

from drivers.nfc.codec import (
    NTAG_SPECS,
    Mirror,
    NtagModel,
    decode_mirror,
    find_ndef_tlv,
    mirror_problem,
    mirror_text,
    ndef_tlv,
)
from drivers.nfc.codec.mirror import COUNTER_MAX, NFC_CNT_EN, READ_CNT
from simulators.nfc.frames import ACK, NAK, parse_uid, random_uid


def _fake_signature(uid: bytes) -> bytes:
    """Stands in for NXP's ECC originality signature (which only NXP's key can make)."""
    import hashlib

    return hashlib.sha256(b"storegw-sim-originality|" + uid).digest()


class EmulatedNtag:
    """An NXP NTAG213/215/216 memory map answering Type 2 commands.

    ``ndef`` is the raw NDEF message to hold (it may be malformed on purpose); None leaves the
    tag as shipped: formatted with an empty NDEF TLV.
    """

    sens_res = bytes.fromhex("4400")
    sel_res = b"\x00"

    def __init__(
        self,
        uid: bytes | str | None = None,
        model: NtagModel = "NTAG213",
        *,
        ndef: bytes | None = None,
        signature: bytes | None = None,
        counter: int = 0,
    ) -> None:
        raw_uid = parse_uid(uid) if isinstance(uid, str) else (uid or random_uid())
        if len(raw_uid) != 7:
            raise ValueError("an NTAG21x UID is 7 bytes")
        self.uid = bytes(raw_uid)
        self.spec = NTAG_SPECS[model]
        self.model = model
        self.signature = signature or _fake_signature(self.uid)
        if len(self.signature) != 32:
            raise ValueError("the originality signature is 32 bytes")
        spec = self.spec
        mem = bytearray(spec.pages * 4)
        u = self.uid
        mem[0:4] = bytes([u[0], u[1], u[2], 0x88 ^ u[0] ^ u[1] ^ u[2]])
        mem[4:8] = u[3:7]
        mem[8:12] = bytes([u[3] ^ u[4] ^ u[5] ^ u[6], 0x48, 0x00, 0x00])
        mem[12:16] = bytes([0xE1, 0x10, spec.cc_size, 0x00])
        mem[16 : 16 + len(spec.factory_area)] = spec.factory_area
        dyn = spec.dynamic_lock_page * 4
        mem[dyn : dyn + 4] = b"\x00\x00\x00\xbd"
        cfg = spec.cfg_page * 4
        mem[cfg : cfg + 16] = bytes.fromhex("0400000000000000ffffffff00000000")
        mem[cfg + 3] = 0xFF  # AUTH0: no page is password protected
        self.memory = mem
        self.authenticated = False
        self._auth0 = 0xFF
        self._prot = False
        if not 0 <= counter <= COUNTER_MAX:
            raise ValueError("the NFC counter is 24 bits")
        self.counter = counter
        """The 24-bit NFC counter (not in the memory map: READ_CNT and the mirror show it)."""
        self._count_pending = False
        self._mirror = self.mirror
        if ndef is not None:
            self.set_ndef(ndef)

    # -- content helpers

    @property
    def _data_area(self) -> slice:
        start = 16 + (5 if self.spec.factory_area[:1] == b"\x01" else 0)
        return slice(start, 16 + self.spec.cc_size * 8)

    def set_ndef(self, message: bytes) -> None:
        """Store ``message`` in the NDEF TLV (after the lock control TLV, as nfcpy writes)."""
        area = self._data_area
        tlv = ndef_tlv(message)
        if len(tlv) - 1 > area.stop - area.start:
            raise ValueError(f"{len(message)} bytes do not fit an {self.model}")
        tlv = tlv[: area.stop - area.start]
        self.memory[area.start : area.start + len(tlv)] = tlv

    @property
    def ndef(self) -> bytes | None:
        """The NDEF message now in memory (what a reader would find)."""
        return find_ndef_tlv(bytes(self.memory[16 : 16 + self.spec.cc_size * 8]))

    def page(self, number: int) -> bytes:
        return bytes(self.memory[number * 4 : number * 4 + 4])

    @property
    def password_protected(self) -> bool:
        return self.memory[self.spec.cfg_page * 4 + 3] < self.spec.pages

    @property
    def locked(self) -> bool:
        """Static lock bits for pages 3-15 all set (what ``protect()`` without password does)."""
        return self.memory[10] & 0xF8 == 0xF8 and self.memory[11] == 0xFF

    @property
    def mirror(self) -> Mirror:
        """The mirror configuration now in CFG0 (in force from the next activation)."""
        return decode_mirror(self.page(self.spec.cfg_page))

    @property
    def counter_enabled(self) -> bool:
        return bool(self.memory[(self.spec.cfg_page + 1) * 4] & NFC_CNT_EN)

    @property
    def password(self) -> bytes:
        cfg = self.spec.cfg_page * 4
        return bytes(self.memory[cfg + 8 : cfg + 14])

    # -- protocol

    def activate(self) -> None:
        """A new activation: forget authentication, apply AUTH0/PROT written since the last one."""
        cfg = self.spec.cfg_page * 4
        self.authenticated = False
        self._auth0 = self.memory[cfg + 3]
        self._prot = bool(self.memory[cfg + 4] & 0x80)
        self._mirror = self.mirror
        self._count_pending = True

    def _count_read(self) -> None:
        """The first READ or FAST_READ of an activation counts, when NFC_CNT_EN is set."""
        if self._count_pending:
            self._count_pending = False
            if self.counter_enabled and self.counter < COUNTER_MAX:
                self.counter += 1

    def _mirrored(self, first: int, data: bytes) -> bytes:
        """``data`` read from page ``first`` on, with the UID/counter mirror laid over it."""
        mirror = self._mirror
        if not mirror.active or mirror_problem(mirror, self.spec) is not None:
            return data
        text = mirror_text(self.uid, self.counter, mirror.conf)
        out = bytearray(data)
        for i in range(len(out)):
            page = (first + i // 4) % self.spec.pages
            at = page * 4 + i % 4 - mirror.start
            if 0 <= at < len(text) and not self._protected(page, write=False):
                out[i] = text[at]
        return bytes(out)

    def process(self, frame: bytes) -> bytes | None:
        if not frame:
            return None
        handler = _NTAG_COMMANDS.get(frame[0])
        return handler(self, frame) if handler else NAK

    def _protected(self, page: int, *, write: bool) -> bool:
        if self.authenticated or page < self._auth0:
            return False
        return write or self._prot

    def _read_page(self, page: int) -> bytes:
        cfg = self.spec.cfg_page
        if page in (cfg + 2, cfg + 3):  # PWD and PACK always read as zeros
            return b"\0\0\0\0"
        if self._protected(page, write=False):
            return b"\0\0\0\0"
        return self.page(page)

    def _cmd_read(self, frame: bytes) -> bytes:
        if len(frame) != 2 or frame[1] >= self.spec.pages:
            return NAK
        start = frame[1]
        if self._protected(start, write=False):
            return NAK
        self._count_read()
        data = b"".join(self._read_page((start + i) % self.spec.pages) for i in range(4))
        return self._mirrored(start, data)

    def _cmd_fast_read(self, frame: bytes) -> bytes:
        if len(frame) != 3 or not frame[1] <= frame[2] < self.spec.pages:
            return NAK
        if self._protected(frame[1], write=False):
            return NAK
        self._count_read()
        data = b"".join(self._read_page(p) for p in range(frame[1], frame[2] + 1))
        return self._mirrored(frame[1], data)

    def _static_locked(self, page: int) -> bool:
        if page == 3:
            return bool(self.memory[10] & 0x08)
        if 4 <= page <= 7:
            return bool(self.memory[10] & (1 << page))
        if 8 <= page <= 15:
            return bool(self.memory[11] & (1 << (page - 8)))
        return False

    def _dynamic_locked(self, page: int) -> bool:
        dyn = self.spec.dynamic_lock_page
        if not 16 <= page < dyn:
            return False
        bits = self.memory[dyn * 4] | self.memory[dyn * 4 + 1] << 8
        return bool(bits >> ((page - 16) // self.spec.pages_per_lock_bit) & 1)

    def _cmd_write(self, frame: bytes) -> bytes:
        if len(frame) != 6:
            return NAK
        page, data = frame[1], frame[2:6]
        spec = self.spec
        if page < 2 or page >= spec.pages or self._protected(page, write=True):
            return NAK
        at = page * 4
        if page == 2:  # lock bytes are OR-ed, serial number bytes ignored
            self.memory[at + 2] |= data[2]
            self.memory[at + 3] |= data[3]
        elif page == 3:  # capability container is one-time programmable
            if self._static_locked(3):
                return NAK
            for i in range(4):
                self.memory[at + i] |= data[i]
        elif page == spec.dynamic_lock_page:
            for i in range(3):
                self.memory[at + i] |= data[i]
        elif page in (spec.cfg_page, spec.cfg_page + 1):
            return self._write_cfg(page, data)
        else:
            if self._static_locked(page) or self._dynamic_locked(page):
                return NAK
            self.memory[at : at + 4] = data
        return ACK

    def _write_cfg(self, page: int, data: bytes) -> bytes:
        spec = self.spec
        if self.memory[(spec.cfg_page + 1) * 4] & 0x40:  # CFGLCK
            return NAK
        if page == spec.cfg_page and mirror_problem(decode_mirror(data), spec) is not None:
            return NAK  # a mirror outside the user memory is refused
        self.memory[page * 4 : page * 4 + 4] = data
        return ACK

    def _cmd_get_version(self, frame: bytes) -> bytes:
        return self.spec.version if len(frame) == 1 else NAK

    def _cmd_read_sig(self, frame: bytes) -> bytes:
        return self.signature if len(frame) == 2 else NAK

    def _cmd_read_cnt(self, frame: bytes) -> bytes:
        if len(frame) != 2 or frame[1] != 0x02:
            return NAK
        cfg1 = self.memory[(self.spec.cfg_page + 1) * 4]
        if cfg1 & 0x08 and not self.authenticated:  # NFC_CNT_PWD_PROT
            return NAK
        return self.counter.to_bytes(3, "little")

    def _cmd_pwd_auth(self, frame: bytes) -> bytes:
        if len(frame) != 5:
            return NAK
        cfg = self.spec.cfg_page * 4
        if frame[1:5] != self.memory[cfg + 8 : cfg + 12]:
            return NAK
        self.authenticated = True
        return bytes(self.memory[cfg + 12 : cfg + 14])


_NTAG_COMMANDS: dict[int, Callable[[EmulatedNtag, bytes], bytes]] = {
    0x30: EmulatedNtag._cmd_read,
    0x3A: EmulatedNtag._cmd_fast_read,
    0xA2: EmulatedNtag._cmd_write,
    0x60: EmulatedNtag._cmd_get_version,
    0x3C: EmulatedNtag._cmd_read_sig,
    0x1B: EmulatedNtag._cmd_pwd_auth,
    READ_CNT: EmulatedNtag._cmd_read_cnt,
}
