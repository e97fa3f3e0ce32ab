"""Per-device availability, retained: ``{base}/devices/{device_id}/availability``.

Devices know nothing of MQTT: their supervisors report state changes here (a plain callback),
and this feature publishes ``{"state": "online"|"offline", "session": N, "ts": ...}`` retained
through the bridge: every configured device once a session is up, then each change. Only the
newest state per device is sent (a device that flaps while the link is down costs one message
when it returns). ``session`` is the bridge's session counter, so a subscriber can drop a
message from an older session than one it has seen. A removed device's topic is cleared (an
empty retained payload); the ids announced are kept in ``availability.json`` so a device
removed while the gateway was down or restarting is cleared on the next connect too.

There is no Will per device: the gateway's own status Will stands for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from core.datafiles import write_atomic
from core.ids import rfc3339
from gateway.feature import BaseFeature
from gateway.uplink import UplinkError
from gateway.wire.topics import Topics

log = logging.getLogger(__name__)

PublishRetained = Callable[[str, bytes], Awaitable[None]]
ONLINE_STATES = frozenset({"available"})
"""Supervisor states in which a device is ``online``; starting, unavailable, disabled are not."""


class Availability(BaseFeature):
    name = "availability"

    def __init__(
        self,
        topics: Topics,
        publish: PublishRetained,
        session: Callable[[], int],
        state_file: Path,
        devices: Iterable[str] = (),
    ) -> None:
        self._topics = topics
        self._publish = publish
        self._session = session
        self._file = state_file
        self._states: dict[str, str] = dict.fromkeys(devices, "offline")
        self._announced: set[str] = set()
        """Ids whose topic holds a retained message of ours (kept in ``state_file``)."""
        self._dirty: set[str] = set()
        self._connected = False
        self._wake = asyncio.Event()

    def lifespan(self) -> AbstractAsyncContextManager[object]:
        return self._loaded()

    @contextlib.asynccontextmanager
    async def _loaded(self) -> AsyncIterator[None]:
        self._announced = self._read()
        yield

    # --- what the supervisors and config changes report -----------------------------------

    def device_state(self, device_id: str, state: str) -> None:
        """A supervisor's state change (``available``, ``unavailable``, ...)."""
        availability = "online" if state in ONLINE_STATES else "offline"
        if self._states.get(device_id) != availability:
            self._states[device_id] = availability
            self._mark(device_id)

    def device_removed(self, device_id: str) -> None:
        if self._states.pop(device_id, None) is not None or device_id in self._announced:
            self._mark(device_id)

    def state(self, device_id: str) -> str | None:
        return self._states.get(device_id)

    def _mark(self, device_id: str) -> None:
        self._dirty.add(device_id)
        self._wake.set()

    # --- the session ------------------------------------------------------------------------

    def on_connected(self) -> None:
        """A new session: every device again (the session number changed), and a clear for
        every id announced before that is no longer configured."""
        self._connected = True
        self._dirty.update(self._states, self._announced)
        self._wake.set()

    def on_disconnected(self) -> None:
        self._connected = False

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._connected:
                await self._flush()

    async def _flush(self) -> None:
        while self._dirty and self._connected:
            device_id = self._dirty.pop()
            state = self._states.get(device_id)
            payload = b"" if state is None else self._payload(state)
            try:
                await self._publish(self._topics.device_availability(device_id), payload)
            except UplinkError as exc:
                self._dirty.add(device_id)  # sent again in the next session
                log.info("device availability not published", extra={"error": str(exc)})
                return
            before = set(self._announced)
            if state is None:
                self._announced.discard(device_id)
            else:
                self._announced.add(device_id)
            if self._announced != before:
                self._write()

    def _payload(self, state: str) -> bytes:
        doc = {"state": state, "session": self._session(), "ts": rfc3339(time.time())}
        return json.dumps(doc, separators=(",", ":")).encode()

    # --- the announced ids ------------------------------------------------------------------

    def _read(self) -> set[str]:
        try:
            doc = json.loads(self._file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("availability state unreadable; starting afresh", extra={"error": str(exc)})
            return set()
        ids = doc.get("announced") if isinstance(doc, dict) else None
        return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()

    def _write(self) -> None:
        try:
            body = json.dumps({"announced": sorted(self._announced)}).encode()
            write_atomic(self._file, body, 0o600)
        except OSError as exc:  # a full disk: the next connect clears less, nothing else
            log.warning("availability state not saved", extra={"error": str(exc)})
