"""nfcpy's udp device, made to listen as a tag: the socket stays bound while the tag is in
the field."""

from __future__ import annotations

import errno
import functools
import time
from typing import Any


@functools.cache
def listener_device_class() -> type[Any]:
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
            if sock is None:
                return False
            try:
                return bool(sock.getsockname()[1] == self.addr[1])
            except OSError:  # closed by the simulator's thread in between (EBADF)
                return False

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


def listener_device(host: str, port: int) -> Any:
    import platform

    device = listener_device_class()(host, port)
    device._vendor_name = platform.uname()[0]
    device._device_name = "IP-Stack"
    device._chipset_name = "UDP"
    return device
