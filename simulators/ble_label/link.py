"""The air between gateway and label, in memory: it can corrupt, drop or lose frames on the
way, to exercise NAKs, retransmissions and verification."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable

from drivers.base import DeviceUnavailable
from drivers.label.ble_protocol import (
    CHUNK_HEADER,
    Op,
    Rsp,
)
from simulators.ble_label.label import BleLabelSimulator

Trace = Callable[[str, bytes], None]
"""Called with ("->", frame) for each write and ("<-", frame) for each notification."""


def _chunk_seq(frame: bytes) -> int | None:
    if len(frame) >= CHUNK_HEADER and frame[0] == Op.IMAGE_CHUNK:
        return int(struct.unpack_from("<H", frame, 2)[0])
    return None


def _ack_seq(frame: bytes) -> int | None:
    if len(frame) == 5 and frame[0] == Rsp.CHUNK_ACK:
        return int(struct.unpack_from("<H", frame, 2)[0])
    return None


class InMemoryLink:
    """The air between gateway and label, in memory, with the interface of ``BleakLink``."""

    def __init__(
        self,
        label: BleLabelSimulator,
        *,
        max_write: int = 244,
        device_id: str = "ble-sim",
        corrupt_chunks: Iterable[int] = (),
        drop_chunks: Iterable[int] = (),
        drop_acks: Iterable[int] = (),
        trace: Trace | None = None,
    ) -> None:
        self.label = label
        self._max_write = max_write
        self.device_id = device_id
        self.corrupt_chunks = set(corrupt_chunks)
        """Chunk sequence numbers to corrupt in the air, once each."""
        self.drop_chunks = set(drop_chunks)
        """Chunk sequence numbers lost on the way to the label, once each."""
        self.drop_acks = set(drop_acks)
        """Chunk sequence numbers whose acknowledgement is lost, once each."""
        self.trace = trace
        self.connected = False
        self.connects = 0
        self.writes: list[bytes] = []
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()

    @property
    def max_write(self) -> int:
        return self._max_write

    async def connect(self) -> None:
        if not self.label.in_range:
            raise DeviceUnavailable(self.device_id, "ble", "label not in range")
        self.connected = True
        self.connects += 1
        self._inbox = asyncio.Queue()

    async def disconnect(self) -> None:
        self.connected = False

    def _check(self, frame: bytes, limit: int) -> None:
        if not self.connected:
            raise DeviceUnavailable(self.device_id, "ble", "not connected")
        if len(frame) > limit:
            raise ValueError(f"{len(frame)}-byte write exceeds the {limit}-byte limit")

    def _deliver(self, frame: bytes) -> None:
        self.writes.append(frame)
        if self.trace is not None:
            self.trace("->", frame)
        for response in self.label.handle(frame):
            if self.trace is not None:
                self.trace("<-", response)
            seq = _ack_seq(response)
            if seq is not None and seq in self.drop_acks:
                self.drop_acks.discard(seq)
                continue
            self._inbox.put_nowait(response)

    async def send_command(self, frame: bytes) -> None:
        self._check(frame, 512)  # ATT long write limit for write with response
        self._deliver(frame)

    async def send_data(self, frame: bytes) -> None:
        self._check(frame, self._max_write)
        seq = _chunk_seq(frame)
        if seq is not None and seq in self.drop_chunks:
            self.drop_chunks.discard(seq)
            self.writes.append(frame)
            return
        if seq is not None and seq in self.corrupt_chunks:
            self.corrupt_chunks.discard(seq)
            damaged = bytearray(frame)
            damaged[-1] ^= 0xFF
            frame = bytes(damaged)
        self._deliver(frame)

    async def receive(self, timeout: float) -> bytes:
        return await asyncio.wait_for(self._inbox.get(), timeout)
