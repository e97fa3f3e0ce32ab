"""NFC tags emulated over nfcpy's ``udp`` device: NTAG213/215/216, Type 4A and FeliCa (Type 3).

A reader opened on ``udp:127.0.0.1:PORT`` senses the tag this simulator presents on ``PORT``.

* :class:`EmulatedNtag` is an NTAG21x memory map with the commands nfcpy and phones use: READ,
  FAST_READ, WRITE (with static/dynamic lock bits and the OTP capability container),
  GET_VERSION, READ_SIG (originality signature) and PWD_AUTH (AUTH0/PROT/PWD/PACK, applied at
  the next activation as on the chip). Writable, so the sticker tool can write and read back.
* :class:`EmulatedType4Tag` answers ISO-DEP (RATS, I/R/S blocks) with an NDEF application
  (SELECT, CC file, NDEF file READ BINARY / UPDATE BINARY).
* :class:`EmulatedFelica` is the block memory behind nfcpy's own ``Type3TagEmulation``.
* :class:`NfcTagSimulator` runs on a thread and puts a tag into the field once, on request
  (``present``/``remove``) or repeatedly (a tap every ``dwell_s + gap_s``).

Two deliberate departures from nfcpy's ready-made listener loop, both measured:

1. The listening socket stays bound for as long as the tag is in the field. nfcpy's ``listen``
   closes and re-binds it each time, and a reader re-senses right after its ``RFOFF``
   (NTAG21x detection and every NAK do), so its SENS_REQ often arrived in that gap and the
   reader lost a 1 s timeout and the product name. When the tag leaves, the socket is closed
   so frames for it are dropped, as a radio would drop them.
2. Type 3 frames are answered by nfcpy's ``Type3TagEmulation`` (what ``connect(card=...)``
   uses) from this module's loop, because ``connect(card=...)`` waits for the next command
   without a timeout and so could not notice a removal or ``stop()``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Annotated, Any, Protocol, Self

import typer

from drivers.nfc.codec import (
    NTAG_SPECS,
    NtagModel,
    encode_ndef_message,
    find_ndef_tlv,
    ndef_tlv,
    ntag_model,
    text_record,
    uri_record,
)

log = logging.getLogger(__name__)

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


# --- tags -----------------------------------------------------------------------------------


class TypeATag(Protocol):
    """A tag on NFC-A: anticollision facts plus a frame handler (None = stay silent)."""

    uid: bytes
    sens_res: bytes
    sel_res: bytes

    def activate(self) -> None: ...

    def process(self, frame: bytes) -> bytes | None: ...


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
        return b"".join(self._read_page((start + i) % self.spec.pages) for i in range(4))

    def _cmd_fast_read(self, frame: bytes) -> bytes:
        if len(frame) != 3 or not frame[1] <= frame[2] < self.spec.pages:
            return NAK
        if self._protected(frame[1], write=False):
            return NAK
        return b"".join(self._read_page(p) for p in range(frame[1], frame[2] + 1))

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
            if self.memory[(spec.cfg_page + 1) * 4] & 0x40:  # CFGLCK
                return NAK
            self.memory[at : at + 4] = data
        else:
            if self._static_locked(page) or self._dynamic_locked(page):
                return NAK
            self.memory[at : at + 4] = data
        return ACK

    def _cmd_get_version(self, frame: bytes) -> bytes:
        return self.spec.version if len(frame) == 1 else NAK

    def _cmd_read_sig(self, frame: bytes) -> bytes:
        return self.signature if len(frame) == 2 else NAK

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
}


def _fake_signature(uid: bytes) -> bytes:
    """Stands in for NXP's ECC originality signature (which only NXP's key can make)."""
    import hashlib

    return hashlib.sha256(b"storegw-sim-originality|" + uid).digest()


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


EmulatedTag = EmulatedNtag | EmulatedType4Tag | EmulatedFelica


# --- the udp listener -------------------------------------------------------------------------


@functools.cache
def _listener_device_class() -> type[Any]:
    """nfcpy's udp Device, except that it keeps its listening socket bound (see module doc)."""
    import nfc.clf.udp

    class ListenerDevice(nfc.clf.udp.Device):  # type: ignore[misc]
        selected = False
        """A reader completed anticollision (SEL_RES sent) since the last session."""
        _listening = False

        def listen_tta(self, target: Any, timeout: float) -> Any:
            self._listening = True
            try:
                return super().listen_tta(target, timeout)
            finally:
                self._listening = False

        def _send_data(self, brty: str, data: bytes, addr: Any) -> None:
            if self._listening and len(data) == 1:  # only SEL_RES is one byte in listen
                self.selected = True
            super()._send_data(brty, data, addr)

        def bound(self) -> bool:
            sock = self.socket
            return sock is not None and sock.getsockname()[1] == self.addr[1]

        def mute(self) -> None:
            if not self.bound():
                super().mute()

        def _bind_socket(self, time_to_return: float) -> bool:
            return True if self.bound() else bool(super()._bind_socket(time_to_return))

        def bind(self) -> None:
            """Bind now (nfcpy would bind inside ``listen``): a clear error if taken."""
            self._create_socket()
            if not self._bind_socket(time.time() + 1.0):
                raise OSError(errno.EADDRINUSE, f"UDP port {self.addr[1]} is in use")

        def unbind(self) -> None:
            """The tag left the field: drop the socket and every frame queued on it."""
            super().mute()

        def close(self) -> None:
            self.unbind()

    return ListenerDevice


def _listener_device(host: str, port: int) -> Any:
    import platform

    device = _listener_device_class()(host, port)
    device._vendor_name = platform.uname()[0]
    device._device_name = "IP-Stack"
    device._chipset_name = "UDP"
    return device


class NfcTagSimulator:
    """Presents emulated tags to readers on ``udp:HOST:PORT`` from a thread of its own.

    * present once: ``NfcTagSimulator(port, tag)``; the tag stays in the field until
      :meth:`remove` (or, with ``dwell_s``, that long after it was first activated).
    * present repeatedly: ``repeat=True``: in the field until ``dwell_s`` after activation,
      out for ``gap_s``, in again, as if tapped over and over.
    * :meth:`present` puts the same or another tag (back) into the field.

    Usable as ``with``/``async with`` or with :meth:`start`/:meth:`stop`; ``start`` returns
    once the UDP port is bound, so a reader started afterwards finds the tag at once.
    """

    def __init__(
        self,
        port: int,
        tag: EmulatedTag | None = None,
        *,
        host: str = "127.0.0.1",
        repeat: bool = False,
        dwell_s: float | None = None,
        gap_s: float = 0.5,
        on_activated: Callable[[EmulatedTag], None] | None = None,
    ) -> None:
        if repeat and dwell_s is None:
            dwell_s = 1.0
        self.port = port
        self.host = host
        self.repeat = repeat
        self.dwell_s = dwell_s
        self.gap_s = gap_s
        self.on_activated = on_activated
        self.activations = 0
        """Times a reader activated a tag (selected it after anticollision)."""
        self.presentations = 0
        self.commands = 0
        """Frames a reader sent after activation (reads, writes, presence checks)."""
        self.error: BaseException | None = None
        self._tag = tag
        self._in_field = tag is not None
        self._gen = 0
        self._dwell_deadline: float | None = None
        self._absent_until: float | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._device: Any = None
        self._bound_gen = -1
        self._thread: threading.Thread | None = None
        if self._in_field:
            self.presentations = 1

    @property
    def path(self) -> str:
        return f"udp:{self.host}:{self.port}"

    @property
    def tag(self) -> EmulatedTag | None:
        return self._tag

    @property
    def in_field(self) -> bool:
        return self._in_field

    @property
    def listening(self) -> bool:
        """The current presentation's socket is bound: a reader can find the tag now."""
        device = self._device
        return bool(device is not None and device.bound() and self._bound_gen == self._gen)

    # -- control

    def start(self, timeout: float = 3.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._main, name=f"nfc-sim-{self.port}", daemon=True)
        self._thread.start()
        if self._in_field:
            self._wait(lambda: self.listening or self.error is not None, timeout, "bind")
        if self.error is not None:
            self.stop()
            raise self.error
        return self

    def stop(self, timeout: float = 3.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            self._kick()
            thread.join(0.02)
        self._thread = None

    def present(self, tag: EmulatedTag | None = None, timeout: float = 3.0) -> None:
        """Put ``tag`` (default: the current one) into the field; returns once listening."""
        with self._cond:
            if tag is not None:
                self._tag = tag
            if self._tag is None:
                raise ValueError("no tag to present")
            self._gen += 1
            self._in_field = True
            self._dwell_deadline = None
            self._absent_until = None
            self.presentations += 1
            self._cond.notify_all()
        if self._thread is not None:
            self._wait(lambda: self.listening or self.error is not None, timeout, "bind", kick=True)

    def remove(self, timeout: float = 3.0) -> None:
        """Take the tag out of the field; returns once its socket is closed."""
        with self._cond:
            self._gen += 1
            self._in_field = False
            self._absent_until = None
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        while self._device is not None and self._device.bound():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nfc simulator on port {self.port}: tag not removed")
            self._kick()
            time.sleep(0.01)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def _wait(
        self, condition: Callable[[], bool], timeout: float, what: str, *, kick: bool = False
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nfc simulator on port {self.port}: no {what} in {timeout}s")
            if kick:
                self._kick()
            time.sleep(0.005)

    def _kick(self) -> None:
        """Wake the thread's ``select`` (an RFOFF frame is what nfcpy stops waiting on)."""
        if self._device is not None and self._device.bound():
            with (
                contextlib.suppress(OSError),
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
            ):
                s.sendto(b"RFOFF", ("127.0.0.1", self.port))

    def _field_ok(self, gen: int) -> bool:
        if self._stop.is_set() or gen != self._gen:
            return False
        deadline = self._dwell_deadline
        return deadline is None or time.monotonic() < deadline

    def _activated(self, tag: EmulatedTag) -> None:
        with self._cond:
            self.activations += 1
            if self.dwell_s is not None and self._dwell_deadline is None:
                self._dwell_deadline = time.monotonic() + self.dwell_s
        if self.on_activated is not None:
            self.on_activated(tag)

    # -- the thread

    def _main(self) -> None:
        import nfc

        try:
            clf = nfc.ContactlessFrontend()
            self._device = clf.device = _listener_device(self.host, self.port)
        except BaseException as exc:
            self.error = exc
            return
        try:
            while not self._stop.is_set():
                with self._cond:
                    now = time.monotonic()
                    absent_until = self._absent_until
                    if not self._in_field and absent_until is not None and now >= absent_until:
                        self._in_field = True
                        self._gen += 1
                        self._absent_until = None
                        self._dwell_deadline = None
                        self.presentations += 1
                    if not self._in_field or self._tag is None:
                        self._cond.wait(0.02)
                        continue
                    tag, gen = self._tag, self._gen
                try:
                    if isinstance(tag, EmulatedFelica):
                        self._serve_felica(clf, tag, gen)
                    else:
                        self._serve_type_a(clf, tag, gen)
                except OSError as exc:
                    log.error(
                        "nfc simulator socket failed", extra={"port": self.port, "error": str(exc)}
                    )
                    self.error = exc
                    return
                finally:
                    self._device.unbind()
                with self._cond:
                    if gen == self._gen and not self._stop.is_set():  # dwell time is over
                        self._in_field = False
                        self._dwell_deadline = None
                        if self.repeat:
                            self._absent_until = time.monotonic() + self.gap_s
        finally:
            with contextlib.suppress(Exception):
                clf.close()

    def _bind(self, gen: int) -> None:
        self._device.bind()
        self._bound_gen = gen

    def _next_command(self, clf: Any, response: bytes | None, gen: int) -> bytes | None:
        """Send ``response``, return the reader's next frame, None when the session is over."""
        import nfc.clf

        data = response
        while self._field_ok(gen):
            try:
                frame = clf.exchange(data, 0.1)
            except nfc.clf.BrokenLinkError:  # RFOFF: the reader released the tag
                return None
            except nfc.clf.CommunicationError:  # reader quiet for now (or a bad frame)
                data = None
                continue
            if frame is None:
                return None
            self.commands += 1
            return bytes(frame)
        return None

    def _serve_type_a(self, clf: Any, tag: EmulatedNtag | EmulatedType4Tag, gen: int) -> None:
        from nfc.clf import LocalTarget

        target = LocalTarget(
            "106A",
            sens_res=bytearray(tag.sens_res),
            sdd_res=bytearray(tag.uid),
            sel_res=bytearray(tag.sel_res),
        )
        self._bind(gen)
        device = self._device
        device.selected = False
        while self._field_ok(gen):
            activated = clf.listen(target, 0.1)
            if activated is None:
                continue
            if not device.selected:
                # nfcpy's listener takes any frame for an activation; a real tag that just
                # entered the field ignores everything before REQA and anticollision (a
                # reader's presence check must fail, so that it notices the new tap).
                continue
            device.selected = False
            tag.activate()
            self._activated(tag)
            frame = activated.tt2_cmd if activated.tt2_cmd is not None else activated.tt4_cmd
            while frame is not None:
                if bytes(frame) in (b"\x26", b"\x52"):
                    # REQA/WUPA: a reader (maybe another one) starts over. An ACTIVE tag
                    # drops to IDLE without answering; the reader's next REQA finds it.
                    break
                frame = self._next_command(clf, tag.process(bytes(frame)), gen)

    def _serve_felica(self, clf: Any, tag: EmulatedFelica, gen: int) -> None:
        import nfc.tag
        from nfc.clf import LocalTarget

        target = LocalTarget("212F", sensf_res=bytearray(tag.sensf_res))
        self._bind(gen)
        while self._field_ok(gen):
            activated = clf.listen(target, 0.1)
            if activated is None:
                continue
            emulation = nfc.tag.emulate(clf, activated)
            if emulation is None:
                continue
            emulation.add_service(0x0009, tag.read_block, tag.write_block)
            emulation.add_service(0x000B, tag.read_block, tag.write_block)
            self._activated(tag)
            frame: bytes | None = bytes(emulation.cmd)
            while frame is not None:
                response = emulation.process_command(bytearray(frame))
                frame = self._next_command(clf, None if response is None else bytes(response), gen)


# --- CLI ------------------------------------------------------------------------------------


def make_tag(
    tag_type: int,
    uid: str | None,
    *,
    uri: str | None = None,
    text: str | None = None,
    model: NtagModel = "NTAG213",
) -> EmulatedTag:
    """The tag ``storegw sim nfc`` presents."""
    records = []
    if uri:
        records.append(uri_record(uri))
    if text:
        records.append(text_record(text))
    message = encode_ndef_message(records) if records else None
    if tag_type == 2:
        return EmulatedNtag(uid, model, ndef=message)
    if tag_type == 3:
        return EmulatedFelica(uid, ndef=message)
    if tag_type == 4:
        return EmulatedType4Tag(uid, ndef=message)
    raise ValueError("tag type must be 2, 3 or 4")


def command(  # typer maps each keyword to a CLI option
    *,
    port: Annotated[
        int, typer.Option(help="UDP port; readers use device udp:127.0.0.1:PORT.")
    ] = 54321,
    type_: Annotated[int, typer.Option("--type", help="NFC Forum tag type: 2, 3 or 4.")] = 2,
    uid: Annotated[
        str | None,
        typer.Option(help="UID as hex (7 bytes; IDm, 8 bytes, for type 3). Random if unset."),
    ] = None,
    uri: Annotated[str | None, typer.Option(help="A URI record to store.")] = None,
    text: Annotated[str | None, typer.Option(help="A text record to store.")] = None,
    model: Annotated[str, typer.Option(help="NTAG213, NTAG215 or NTAG216 (type 2).")] = "NTAG213",
    repeat: Annotated[
        bool, typer.Option(help="Tap again and again: in the field --dwell s, out --gap s.")
    ] = False,
    dwell: Annotated[float, typer.Option(help="Seconds in the field after each read.")] = 1.0,
    gap: Annotated[float, typer.Option(help="Seconds out of the field between taps.")] = 1.0,
) -> None:
    """Present an NFC tag to readers on nfcpy's udp device until Ctrl-C.

    Example: storegw sim nfc --port 54321 --type 2 --uri https://example.com/t/S1/P1
    """
    if ntag_model(model) is None:
        raise typer.BadParameter("model must be NTAG213, NTAG215 or NTAG216")
    try:
        tag = make_tag(type_, uid, uri=uri, text=text, model=ntag_model(model) or "NTAG213")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    reported = [0]

    def report(t: EmulatedTag) -> None:  # once per tap (NXP detection re-selects the tag)
        if reported[0] != sim.presentations:
            reported[0] = sim.presentations
            typer.echo(f"read: type {type_} uid {t.uid.hex()}")

    sim = NfcTagSimulator(
        port, tag, repeat=repeat, dwell_s=dwell if repeat else None, gap_s=gap, on_activated=report
    )
    try:
        sim.start()
    except (OSError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"presenting type {type_} tag {tag.uid.hex()} on {sim.path} (Ctrl-C stops)")
    try:
        while sim.error is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    if sim.error is not None:
        typer.echo(f"error: {sim.error}", err=True)
        raise typer.Exit(1)
