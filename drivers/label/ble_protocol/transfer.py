"""The sender's state machine for one image transfer, without I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from drivers.label.ble_protocol.commands import DisplayImage, ImageBegin, ImageChunk, ImageEnd
from drivers.label.ble_protocol.image import chunk, crc32
from drivers.label.ble_protocol.responses import (
    ChunkAck,
    DisplayState,
    ErrorResponse,
    ImageReady,
    ImageVerify,
    Response,
)
from drivers.label.ble_protocol.spec import (
    AckStatus,
    LabelRefused,
    NoResponse,
    ProtocolError,
    TransferFailed,
    VerifyFailed,
    VerifyStatus,
)


class Channel(enum.Enum):
    CONTROL = "control"
    """Control point: write with response."""
    DATA = "data"
    """Image data: write without response."""


@dataclass(frozen=True)
class Outgoing:
    channel: Channel
    frame: bytes


class Phase(enum.Enum):
    NEW = "new"
    BEGIN = "begin"
    CHUNKS = "chunks"
    VERIFY = "verify"
    DISPLAY = "display"
    DONE = "done"


@dataclass
class TransferStats:
    chunks: int = 0
    chunk_size: int = 0
    retransmissions: int = 0
    naks: int = 0
    timeouts: int = 0


@dataclass
class ImageTransfer:
    """Sends one image to one label: feed it responses and timeouts, send what it returns.

    It does no I/O, so every path (NAK, lost ack, verify failure) is tested with byte scripts.
    """

    esl_id: int
    image_index: int
    width: int
    height: int
    payload: bytes
    chunk_size: int
    window: int = 4
    max_retries: int = 5
    display_index: int = 0
    phase: Phase = Phase.NEW
    stats: TransferStats = field(default_factory=TransferStats)
    _chunks: list[bytes] = field(default_factory=list, init=False)
    _next: int = field(default=0, init=False)
    _in_flight: set[int] = field(default_factory=set, init=False)
    _acked: set[int] = field(default_factory=set, init=False)
    _naks: dict[int, int] = field(default_factory=dict, init=False)
    _silent: int = field(default=0, init=False)
    image_crc: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.chunk_size > 0xFFFF:
            raise ValueError("chunk_size must be 1..65535")
        if self.window < 1:
            raise ValueError("window must be at least 1")
        self._chunks = chunk(self.payload, self.chunk_size)
        if len(self._chunks) > 0xFFFF:
            raise ValueError("image needs more than 65535 chunks; use a larger chunk size")
        self.stats.chunks = len(self._chunks)
        self.stats.chunk_size = self.chunk_size
        self.image_crc = crc32(self.payload)

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def start(self) -> list[Outgoing]:
        if self.phase is not Phase.NEW:
            raise ProtocolError("transfer already started")
        self.phase = Phase.BEGIN
        return [self._begin()]

    def on_response(self, response: Response) -> list[Outgoing]:
        if response.esl_id != self.esl_id:
            return []  # another label's answer (or a stale one): not ours
        if isinstance(response, ErrorResponse):
            raise LabelRefused(response.code)
        return self._handle(response)

    def on_timeout(self) -> list[Outgoing]:
        """Nothing arrived in time: repeat what is outstanding, or give up."""
        self.stats.timeouts += 1
        self._silent += 1
        if self._silent > self.max_retries:
            raise NoResponse(f"no answer in phase {self.phase.value} after {self._silent} tries")
        match self.phase:
            case Phase.BEGIN:
                out = [self._begin()]
            case Phase.CHUNKS:
                out = [self._chunk(seq) for seq in sorted(self._in_flight)]
            case Phase.VERIFY:
                out = [self._end()]
            case Phase.DISPLAY:
                out = [self._display()]
            case _:
                out = []
        self.stats.retransmissions += len(out)
        return out

    # internals

    def _handle(self, response: Response) -> list[Outgoing]:
        if self.phase is Phase.BEGIN and isinstance(response, ImageReady):
            return self._on_ready(response)
        if self.phase is Phase.CHUNKS and isinstance(response, ChunkAck):
            return self._on_ack(response)
        if self.phase is Phase.VERIFY and isinstance(response, ImageVerify):
            return self._on_verify(response)
        if (
            self.phase is Phase.DISPLAY
            and isinstance(response, DisplayState)
            and response.image_index == self.image_index
        ):
            self._silent = 0
            self.phase = Phase.DONE
        return []  # anything else is a late duplicate of an earlier answer

    def _on_ready(self, ready: ImageReady) -> list[Outgoing]:
        if ready.image_index != self.image_index:
            return []
        if ready.chunk_count != len(self._chunks):
            raise TransferFailed(
                f"label expects {ready.chunk_count} chunks, we have {len(self._chunks)}"
            )
        self._silent = 0
        self.phase = Phase.CHUNKS
        return self._fill_window()

    def _on_verify(self, verify: ImageVerify) -> list[Outgoing]:
        if verify.image_index != self.image_index:
            return []
        if verify.status != VerifyStatus.OK or verify.crc32 != self.image_crc:
            raise VerifyFailed(
                f"label image check failed (status {verify.status}, "
                f"crc {verify.crc32:08x}, expected {self.image_crc:08x})"
            )
        self._silent = 0
        self.phase = Phase.DISPLAY
        return [self._display()]

    def _on_ack(self, ack: ChunkAck) -> list[Outgoing]:
        if ack.seq not in self._in_flight:
            return []  # duplicate ack for a chunk we repeated
        self._silent = 0
        if ack.status == AckStatus.OK:
            self._in_flight.discard(ack.seq)
            self._acked.add(ack.seq)
            if len(self._acked) == len(self._chunks):
                self.phase = Phase.VERIFY
                return [self._end()]
            return self._fill_window()
        if ack.status == AckStatus.BAD_CRC:
            self.stats.naks += 1
            count = self._naks.get(ack.seq, 0) + 1
            self._naks[ack.seq] = count
            if count > self.max_retries:
                raise TransferFailed(f"chunk {ack.seq} failed its CRC {count} times")
            self.stats.retransmissions += 1
            return [self._chunk(ack.seq)]
        raise TransferFailed(f"label rejected chunk {ack.seq} (status {ack.status})")

    def _fill_window(self) -> list[Outgoing]:
        out: list[Outgoing] = []
        while len(self._in_flight) < self.window and self._next < len(self._chunks):
            seq = self._next
            self._next += 1
            self._in_flight.add(seq)
            out.append(self._chunk(seq))
        return out

    def _begin(self) -> Outgoing:
        frame = ImageBegin(
            esl_id=self.esl_id,
            image_index=self.image_index,
            width=self.width,
            height=self.height,
            total_len=len(self.payload),
            crc32=self.image_crc,
            chunk_size=self.chunk_size,
        )
        return Outgoing(Channel.CONTROL, frame.encode())

    def _chunk(self, seq: int) -> Outgoing:
        return Outgoing(Channel.DATA, ImageChunk.of(self.esl_id, seq, self._chunks[seq]).encode())

    def _end(self) -> Outgoing:
        return Outgoing(
            Channel.CONTROL, ImageEnd(esl_id=self.esl_id, image_index=self.image_index).encode()
        )

    def _display(self) -> Outgoing:
        frame = DisplayImage(
            esl_id=self.esl_id, display_index=self.display_index, image_index=self.image_index
        )
        return Outgoing(Channel.CONTROL, frame.encode())
