"""The BLE shelf-label protocol, without a radio: frames, chunking, CRCs and the sender's state.

Modelled on the Bluetooth ESL service (Electronic Shelf Label): commands carry the label's ESL id,
opcodes and error codes follow ESL where ESL has one (Ping, Display Image, LED Control; Basic
State, Display State, LED State and Error responses). ESL moves images with the Object Transfer
Service; this protocol instead writes them in acknowledged chunks, which a small label firmware
can implement in a few hundred lines. It is therefore "ESL-style", not ESL-conformant.

GATT layout (one custom service):

* control point (write with response + notify): commands, and every response as a notification
* image data (write without response): ``IMAGE_CHUNK`` frames

All integers are little-endian. Every frame starts ``opcode:u8, esl_id:u8``.

Commands (gateway -> label)::

    PING           0x00
    DISPLAY_IMAGE  0x20  display_index:u8 image_index:u8
    IMAGE_BEGIN    0x30  image_index:u8 width:u16 height:u16 format:u8 total_len:u32
                         crc32:u32 chunk_size:u16
    IMAGE_CHUNK    0x31  seq:u16 crc16:u16 data[...]      (on the image data characteristic)
    IMAGE_END      0x32  image_index:u8
    LED_CONTROL    0xB0  led_index:u8 color:u8 pattern[5] off_period:u8 on_period:u8 repeat:u16

Responses (label -> gateway, notifications)::

    ERROR          0x00  code:u8                           (ESL error codes)
    LED_STATE      0x01  led_index:u8
    BASIC_STATE    0x10  flags:u16 battery_mv:u16 image_index:u8 (0xFF: none shown)
    DISPLAY_STATE  0x11  display_index:u8 image_index:u8
    IMAGE_READY    0x30  image_index:u8 chunk_count:u16
    CHUNK_ACK      0x31  seq:u16 status:u8                 (0 ok, 1 bad crc, 2 out of range, ...)
    IMAGE_VERIFY   0x32  image_index:u8 status:u8 crc32:u32

A transfer is ``IMAGE_BEGIN`` -> ``IMAGE_READY``; then up to ``window`` chunks in flight, each
acknowledged (a chunk whose CRC-16 fails is NAKed and sent again); ``IMAGE_END`` -> the label
checks the CRC-32 of the whole image -> ``IMAGE_VERIFY``; ``DISPLAY_IMAGE`` -> ``DISPLAY_STATE``.
A missing response is a timeout: the sender repeats what is outstanding (the label treats
repeats idempotently) and gives up after ``max_retries`` timeouts in a row.

Image format 0x01: two 1-bit planes, black then red, rows top to bottom, most significant bit
first, each row padded to a whole byte; a set bit means ink.

CRC-16 is CRC-16/CCITT-FALSE (``binascii.crc_hqx(data, 0xFFFF)``); CRC-32 is zlib's.
"""

from __future__ import annotations

import binascii
import enum
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SERVICE_UUID = "5354c0e0-4757-4553-4c00-000000000001"
CONTROL_POINT_UUID = "5354c0e0-4757-4553-4c00-000000000002"
IMAGE_DATA_UUID = "5354c0e0-4757-4553-4c00-000000000003"

BROADCAST_ESL_ID = 0xFF
FORMAT_BWR_PLANES = 0x01
NO_IMAGE = 0xFF
CHUNK_HEADER = 6
"""opcode, esl_id, seq:u16, crc16:u16."""


class Op(enum.IntEnum):
    """Command opcodes (gateway -> label)."""

    PING = 0x00
    DISPLAY_IMAGE = 0x20
    IMAGE_BEGIN = 0x30
    IMAGE_CHUNK = 0x31
    IMAGE_END = 0x32
    LED_CONTROL = 0xB0


class Rsp(enum.IntEnum):
    """Response opcodes (label -> gateway)."""

    ERROR = 0x00
    LED_STATE = 0x01
    BASIC_STATE = 0x10
    DISPLAY_STATE = 0x11
    IMAGE_READY = 0x30
    CHUNK_ACK = 0x31
    IMAGE_VERIFY = 0x32


class EslError(enum.IntEnum):
    """Error codes as in the Bluetooth ESL service."""

    UNSPECIFIED = 0x01
    INVALID_OPCODE = 0x02
    INVALID_STATE = 0x03
    INVALID_IMAGE_INDEX = 0x04
    IMAGE_NOT_AVAILABLE = 0x05
    INVALID_PARAMETERS = 0x06
    CAPACITY_LIMIT = 0x07
    INSUFFICIENT_BATTERY = 0x08
    INSUFFICIENT_RESOURCES = 0x09
    RETRY = 0x0A
    QUEUE_FULL = 0x0B


class AckStatus(enum.IntEnum):
    OK = 0
    BAD_CRC = 1
    OUT_OF_RANGE = 2
    NOT_READY = 3


class VerifyStatus(enum.IntEnum):
    OK = 0
    CRC_MISMATCH = 1
    INCOMPLETE = 2


class BasicFlags(enum.IntFlag):
    """BASIC_STATE flags (the ESL Basic State bits, plus has-LED)."""

    SERVICE_NEEDED = 0x01
    SYNCHRONIZED = 0x02
    ACTIVE_LED = 0x04
    PENDING_LED_UPDATE = 0x08
    PENDING_DISPLAY_UPDATE = 0x10
    HAS_LED = 0x100


class ProtocolError(Exception):
    """A frame could not be decoded, or the exchange broke the protocol."""


class LabelRefused(ProtocolError):
    """The label answered with an ESL error code."""

    def __init__(self, code: int) -> None:
        try:
            name = EslError(code).name.lower()
        except ValueError:
            name = f"0x{code:02x}"
        super().__init__(f"label refused: {name}")
        self.code = code
        self.name = name


class TransferFailed(ProtocolError):
    """A chunk kept failing its CRC, or the label broke the transfer."""


class VerifyFailed(TransferFailed):
    """The label's CRC-32 of the assembled image is not ours."""


class NoResponse(ProtocolError):
    """The label stopped answering (out of range, asleep, flat battery)."""


# --- CRCs and image planes ------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def plane_size(width: int, height: int) -> int:
    return (width + 7) // 8 * height


def pack_bwr(indices: bytes, width: int, height: int) -> bytes:
    """Palette indices (0 white, 1 black, 2 red; one byte per pixel) -> black plane + red plane."""
    if len(indices) != width * height:
        raise ValueError(f"expected {width * height} pixels, got {len(indices)}")
    stride = (width + 7) // 8
    black = bytearray(stride * height)
    red = bytearray(stride * height)
    for y in range(height):
        row = indices[y * width : (y + 1) * width]
        base = y * stride
        for x, value in enumerate(row):
            if value == 1:
                black[base + (x >> 3)] |= 0x80 >> (x & 7)
            elif value == 2:
                red[base + (x >> 3)] |= 0x80 >> (x & 7)
    return bytes(black + red)


def unpack_bwr(data: bytes, width: int, height: int) -> bytes:
    """Inverse of :func:`pack_bwr`; where both planes have ink, red wins (as on the panels)."""
    size = plane_size(width, height)
    if len(data) != 2 * size:
        raise ValueError(f"expected {2 * size} bytes for {width}x{height}, got {len(data)}")
    stride = (width + 7) // 8
    out = bytearray(width * height)
    for y in range(height):
        for x in range(width):
            byte_index = y * stride + (x >> 3)
            bit = 0x80 >> (x & 7)
            if data[size + byte_index] & bit:
                out[y * width + x] = 2
            elif data[byte_index] & bit:
                out[y * width + x] = 1
    return bytes(out)


def chunk(payload: bytes, chunk_size: int) -> list[bytes]:
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    return [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)] or [b""]


# --- frames ---------------------------------------------------------------------------------

_Frozen = ConfigDict(frozen=True, extra="forbid")
U8 = Annotated[int, Field(ge=0, le=0xFF)]
U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
U32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]


class Ping(BaseModel):
    model_config = _Frozen
    op: Literal[Op.PING] = Op.PING
    esl_id: U8

    def encode(self) -> bytes:
        return bytes((self.op, self.esl_id))


class DisplayImage(BaseModel):
    model_config = _Frozen
    op: Literal[Op.DISPLAY_IMAGE] = Op.DISPLAY_IMAGE
    esl_id: U8
    display_index: U8 = 0
    image_index: U8

    def encode(self) -> bytes:
        return bytes((self.op, self.esl_id, self.display_index, self.image_index))


class ImageBegin(BaseModel):
    model_config = _Frozen
    op: Literal[Op.IMAGE_BEGIN] = Op.IMAGE_BEGIN
    esl_id: U8
    image_index: U8
    width: U16
    height: U16
    format: U8 = FORMAT_BWR_PLANES
    total_len: U32
    crc32: U32
    chunk_size: U16

    def encode(self) -> bytes:
        return struct.pack(
            "<BBBHHBIIH",
            self.op,
            self.esl_id,
            self.image_index,
            self.width,
            self.height,
            self.format,
            self.total_len,
            self.crc32,
            self.chunk_size,
        )


class ImageChunk(BaseModel):
    model_config = _Frozen
    op: Literal[Op.IMAGE_CHUNK] = Op.IMAGE_CHUNK
    esl_id: U8
    seq: U16
    crc16: U16
    data: bytes

    @classmethod
    def of(cls, esl_id: int, seq: int, data: bytes) -> ImageChunk:
        return cls(esl_id=esl_id, seq=seq, crc16=crc16(data), data=data)

    @property
    def intact(self) -> bool:
        return crc16(self.data) == self.crc16

    def encode(self) -> bytes:
        return struct.pack("<BBHH", self.op, self.esl_id, self.seq, self.crc16) + self.data


class ImageEnd(BaseModel):
    model_config = _Frozen
    op: Literal[Op.IMAGE_END] = Op.IMAGE_END
    esl_id: U8
    image_index: U8

    def encode(self) -> bytes:
        return bytes((self.op, self.esl_id, self.image_index))


class LedControl(BaseModel):
    """ESL LED Control: colour (2 bits each of red, green, blue, brightness), a 40-bit pattern
    played bit by bit with on/off periods, repeated ``repeat`` times or for ``repeat`` seconds."""

    model_config = _Frozen
    op: Literal[Op.LED_CONTROL] = Op.LED_CONTROL
    esl_id: U8
    led_index: U8 = 0
    color: U8 = 0b11_00_00_11  # full brightness, red
    pattern: bytes = Field(default=b"\xaa\xaa\xaa\xaa\xaa", min_length=5, max_length=5)
    off_period: U8 = 25
    """Units of 2 ms per off bit (ESL uses 2 ms units)."""
    on_period: U8 = 25
    repeat_seconds: bool = True
    """True: ``repeat`` is a duration in seconds; False: a count of pattern repeats."""
    repeat: int = Field(default=10, ge=0, le=0x7FFF)

    def encode(self) -> bytes:
        repeats = (self.repeat << 1) | (1 if self.repeat_seconds else 0)
        return (
            bytes((self.op, self.esl_id, self.led_index, self.color))
            + self.pattern
            + struct.pack("<BBH", self.off_period, self.on_period, repeats)
        )


Command = Ping | DisplayImage | ImageBegin | ImageChunk | ImageEnd | LedControl


class ErrorResponse(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.ERROR] = Rsp.ERROR
    esl_id: U8
    code: U8

    def encode(self) -> bytes:
        return bytes((self.op, self.esl_id, self.code))


class LedState(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.LED_STATE] = Rsp.LED_STATE
    esl_id: U8
    led_index: U8

    def encode(self) -> bytes:
        return bytes((self.op, self.esl_id, self.led_index))


class BasicState(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.BASIC_STATE] = Rsp.BASIC_STATE
    esl_id: U8
    flags: U16
    battery_mv: U16
    image_index: U8 = NO_IMAGE

    @property
    def has_led(self) -> bool:
        return bool(self.flags & BasicFlags.HAS_LED)

    def encode(self) -> bytes:
        return struct.pack(
            "<BBHHB", self.op, self.esl_id, self.flags, self.battery_mv, self.image_index
        )


class DisplayState(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.DISPLAY_STATE] = Rsp.DISPLAY_STATE
    esl_id: U8
    display_index: U8
    image_index: U8

    def encode(self) -> bytes:
        return bytes((self.op, self.esl_id, self.display_index, self.image_index))


class ImageReady(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.IMAGE_READY] = Rsp.IMAGE_READY
    esl_id: U8
    image_index: U8
    chunk_count: U16

    def encode(self) -> bytes:
        return struct.pack("<BBBH", self.op, self.esl_id, self.image_index, self.chunk_count)


class ChunkAck(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.CHUNK_ACK] = Rsp.CHUNK_ACK
    esl_id: U8
    seq: U16
    status: U8

    def encode(self) -> bytes:
        return struct.pack("<BBHB", self.op, self.esl_id, self.seq, self.status)


class ImageVerify(BaseModel):
    model_config = _Frozen
    op: Literal[Rsp.IMAGE_VERIFY] = Rsp.IMAGE_VERIFY
    esl_id: U8
    image_index: U8
    status: U8
    crc32: U32

    def encode(self) -> bytes:
        return struct.pack(
            "<BBBBI", self.op, self.esl_id, self.image_index, self.status, self.crc32
        )


Response = (
    ErrorResponse | LedState | BasicState | DisplayState | ImageReady | ChunkAck | ImageVerify
)


def _need(frame: bytes, length: int, what: str) -> None:
    if len(frame) != length:
        raise ProtocolError(f"{what}: expected {length} bytes, got {len(frame)}")


def _error(esl_id: int, body: bytes) -> Response:
    return ErrorResponse(esl_id=esl_id, code=body[0])


def _led_state(esl_id: int, body: bytes) -> Response:
    return LedState(esl_id=esl_id, led_index=body[0])


def _basic_state(esl_id: int, body: bytes) -> Response:
    flags, battery, image = struct.unpack("<HHB", body)
    return BasicState(esl_id=esl_id, flags=flags, battery_mv=battery, image_index=image)


def _display_state(esl_id: int, body: bytes) -> Response:
    return DisplayState(esl_id=esl_id, display_index=body[0], image_index=body[1])


def _image_ready(esl_id: int, body: bytes) -> Response:
    index, count = struct.unpack("<BH", body)
    return ImageReady(esl_id=esl_id, image_index=index, chunk_count=count)


def _chunk_ack(esl_id: int, body: bytes) -> Response:
    seq, status = struct.unpack("<HB", body)
    return ChunkAck(esl_id=esl_id, seq=seq, status=status)


def _image_verify(esl_id: int, body: bytes) -> Response:
    index, status, crc = struct.unpack("<BBI", body)
    return ImageVerify(esl_id=esl_id, image_index=index, status=status, crc32=crc)


_RESPONSES: dict[Rsp, tuple[int, Callable[[int, bytes], Response]]] = {
    Rsp.ERROR: (1, _error),
    Rsp.LED_STATE: (1, _led_state),
    Rsp.BASIC_STATE: (5, _basic_state),
    Rsp.DISPLAY_STATE: (2, _display_state),
    Rsp.IMAGE_READY: (3, _image_ready),
    Rsp.CHUNK_ACK: (3, _chunk_ack),
    Rsp.IMAGE_VERIFY: (6, _image_verify),
}
"""Opcode -> (body length after opcode and esl_id, decoder)."""


def parse_response(frame: bytes) -> Response:
    """Decode one notification; :class:`ProtocolError` for anything malformed."""
    if len(frame) < 2:
        raise ProtocolError(f"frame too short ({len(frame)} bytes)")
    try:
        kind = Rsp(frame[0])
    except ValueError:
        raise ProtocolError(f"unknown response opcode 0x{frame[0]:02x}") from None
    length, decode = _RESPONSES[kind]
    body = bytes(frame[2:])
    if len(body) != length:
        raise ProtocolError(f"{kind.name}: expected {length + 2} bytes, got {len(frame)}")
    return decode(frame[1], body)


def _ping(esl_id: int, body: bytes) -> Command:
    return Ping(esl_id=esl_id)


def _display_image(esl_id: int, body: bytes) -> Command:
    return DisplayImage(esl_id=esl_id, display_index=body[0], image_index=body[1])


def _image_begin(esl_id: int, body: bytes) -> Command:
    index, width, height, fmt, total, crc, size = struct.unpack("<BHHBIIH", body)
    return ImageBegin(
        esl_id=esl_id,
        image_index=index,
        width=width,
        height=height,
        format=fmt,
        total_len=total,
        crc32=crc,
        chunk_size=size,
    )


def _image_chunk(esl_id: int, body: bytes) -> Command:
    seq, crc = struct.unpack_from("<HH", body)
    return ImageChunk(esl_id=esl_id, seq=seq, crc16=crc, data=body[4:])


def _image_end(esl_id: int, body: bytes) -> Command:
    return ImageEnd(esl_id=esl_id, image_index=body[0])


def _led_control(esl_id: int, body: bytes) -> Command:
    off, on, repeats = struct.unpack_from("<BBH", body, 7)
    return LedControl(
        esl_id=esl_id,
        led_index=body[0],
        color=body[1],
        pattern=body[2:7],
        off_period=off,
        on_period=on,
        repeat_seconds=bool(repeats & 1),
        repeat=repeats >> 1,
    )


_COMMANDS: dict[Op, tuple[int, Callable[[int, bytes], Command]]] = {
    Op.PING: (0, _ping),
    Op.DISPLAY_IMAGE: (2, _display_image),
    Op.IMAGE_BEGIN: (16, _image_begin),
    Op.IMAGE_CHUNK: (-(CHUNK_HEADER - 2), _image_chunk),
    Op.IMAGE_END: (1, _image_end),
    Op.LED_CONTROL: (11, _led_control),
}
"""Opcode -> (body length, or minus the minimum length for variable frames; decoder)."""


def parse_command(frame: bytes) -> Command:
    """Decode one command (the label side; used by the simulator and by tests)."""
    if len(frame) < 2:
        raise ProtocolError(f"frame too short ({len(frame)} bytes)")
    try:
        kind = Op(frame[0])
    except ValueError:
        raise ProtocolError(f"unknown command opcode 0x{frame[0]:02x}") from None
    length, decode = _COMMANDS[kind]
    body = bytes(frame[2:])
    if (length >= 0 and len(body) != length) or (length < 0 and len(body) < -length):
        raise ProtocolError(f"{kind.name}: {len(frame)} bytes is not a valid length")
    return decode(frame[1], body)


# --- the sender's state machine (sans I/O) --------------------------------------------------


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
    frames_sent: int = 0
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
        return self._send([self._begin()])

    def on_frame(self, frame: bytes) -> list[Outgoing]:
        """Decode and handle one notification."""
        return self.on_response(parse_response(frame))

    def on_response(self, response: Response) -> list[Outgoing]:
        if response.esl_id != self.esl_id:
            return []  # another label's answer (or a stale one): not ours
        if isinstance(response, ErrorResponse):
            raise LabelRefused(response.code)
        out = self._handle(response)
        return self._send(out)

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
        return self._send(out)

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

    def _send(self, out: list[Outgoing]) -> list[Outgoing]:
        self.stats.frames_sent += len(out)
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


def led_color(name: str, brightness: int = 3) -> int:
    """ESL LED component byte: 2 bits each of red, green, blue, then brightness (bits 6-7)."""
    rgb = {
        "red": (3, 0, 0),
        "green": (0, 3, 0),
        "blue": (0, 0, 3),
        "white": (3, 3, 3),
        "yellow": (3, 3, 0),
    }
    try:
        r, g, b = rgb[name]
    except KeyError:
        raise ValueError(f"unknown LED colour {name!r}; one of {sorted(rgb)}") from None
    return r | (g << 2) | (b << 4) | ((brightness & 3) << 6)


__all__ = [
    "BROADCAST_ESL_ID",
    "CHUNK_HEADER",
    "CONTROL_POINT_UUID",
    "FORMAT_BWR_PLANES",
    "IMAGE_DATA_UUID",
    "NO_IMAGE",
    "SERVICE_UUID",
    "AckStatus",
    "BasicFlags",
    "BasicState",
    "Channel",
    "ChunkAck",
    "Command",
    "DisplayImage",
    "DisplayState",
    "ErrorResponse",
    "EslError",
    "ImageBegin",
    "ImageChunk",
    "ImageEnd",
    "ImageReady",
    "ImageTransfer",
    "ImageVerify",
    "LabelRefused",
    "LedControl",
    "LedState",
    "NoResponse",
    "Op",
    "Outgoing",
    "Phase",
    "Ping",
    "ProtocolError",
    "Response",
    "Rsp",
    "TransferFailed",
    "TransferStats",
    "VerifyFailed",
    "VerifyStatus",
    "chunk",
    "crc16",
    "crc32",
    "led_color",
    "pack_bwr",
    "parse_command",
    "parse_response",
    "plane_size",
    "unpack_bwr",
]
