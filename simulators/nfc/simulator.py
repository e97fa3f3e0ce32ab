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
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from simulators.nfc.device import listener_device
from simulators.nfc.felica import EmulatedFelica
from simulators.nfc.ntag import EmulatedNtag
from simulators.nfc.type4 import EmulatedType4Tag

log = logging.getLogger(__name__)

EmulatedTag = EmulatedNtag | EmulatedType4Tag | EmulatedFelica


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

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
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
            self._device = clf.device = listener_device(self.host, self.port)
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
