"""The label's side of drivers.label.ble_protocol: image transfer, display, LED and state."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from drivers.label.ble_protocol import (
    BROADCAST_ESL_ID,
    FORMAT_BWR_PLANES,
    NO_IMAGE,
    AckStatus,
    BasicFlags,
    BasicState,
    ChunkAck,
    Command,
    DisplayImage,
    DisplayState,
    ErrorResponse,
    EslError,
    ImageBegin,
    ImageChunk,
    ImageEnd,
    ImageReady,
    ImageVerify,
    LedControl,
    LedState,
    Op,
    Ping,
    ProtocolError,
    VerifyStatus,
    crc32,
    parse_command,
    plane_size,
    unpack_bwr,
)
from drivers.label.render import PALETTE_RGB


@dataclass
class _Transfer:
    begin: ImageBegin
    buffer: bytearray
    chunk_count: int
    received: set[int] = field(default_factory=set)
    verified: ImageVerify | None = None


@dataclass(eq=False, kw_only=True)
class BleLabelSimulator:
    """What a label firmware would do with each frame; returns the notifications it sends."""

    esl_id: int = 0
    width: int = 296
    height: int = 128
    battery_mv: int = 2950
    has_led: bool = True
    image_slots: int = 2
    max_chunk: int = 512
    in_range: bool = field(default=True, init=False)
    """False: connecting fails, as for a label out of radio range."""
    mute: bool = field(default=False, init=False)
    """True: the label takes frames but never answers."""
    corrupt_storage_once: bool = field(default=False, init=False)
    """Flip a bit in the next assembled image, so its CRC-32 check fails once."""
    images: dict[int, bytes] = field(default_factory=dict, init=False, repr=False)
    displayed: int | None = field(default=None, init=False)
    led_commands: list[LedControl] = field(default_factory=list, init=False)
    chunks_ok: int = field(default=0, init=False)
    chunks_bad: int = field(default=0, init=False)
    transfers_verified: int = field(default=0, init=False)
    _xfer: _Transfer | None = field(default=None, init=False, repr=False)

    def handle(self, frame: bytes) -> list[bytes]:
        """One written frame in, the notifications it causes out."""
        try:
            command = parse_command(frame)
        except ProtocolError:
            code = EslError.INVALID_OPCODE if frame[:1] and frame[0] not in set(Op) else None
            return [self._error(code or EslError.INVALID_PARAMETERS)]
        if command.esl_id not in (self.esl_id, BROADCAST_ESL_ID):
            return []  # addressed to another label
        if self.mute:
            return []
        response = self._dispatch(command)
        return [] if response is None else [response]

    def displayed_image(self) -> Image.Image:
        """What the panel shows, as a palette image (white, black, red)."""
        if self.displayed is None:
            raise LookupError("the label shows no image")
        indices = unpack_bwr(self.images[self.displayed], self.width, self.height)
        image = Image.frombytes("P", (self.width, self.height), indices)
        image.putpalette([c for rgb in PALETTE_RGB for c in rgb])
        return image

    # --- commands ---------------------------------------------------------------------------

    def _error(self, code: EslError) -> bytes:
        return ErrorResponse(esl_id=self.esl_id, code=code).encode()

    def _dispatch(self, command: Command) -> bytes | None:
        if isinstance(command, Ping):
            return self._state()
        if isinstance(command, ImageBegin):
            return self._begin(command)
        if isinstance(command, ImageChunk):
            return self._chunk(command)
        if isinstance(command, ImageEnd):
            return self._end(command)
        if isinstance(command, DisplayImage):
            return self._display(command)
        return self._led(command)

    def _state(self) -> bytes:
        flags = BasicFlags.HAS_LED if self.has_led else BasicFlags(0)
        if self._xfer is not None and self._xfer.verified is None:
            flags |= BasicFlags.PENDING_DISPLAY_UPDATE
        image = NO_IMAGE if self.displayed is None else self.displayed
        return BasicState(
            esl_id=self.esl_id, flags=int(flags), battery_mv=self.battery_mv, image_index=image
        ).encode()

    def _begin(self, begin: ImageBegin) -> bytes:
        if begin.image_index >= self.image_slots:
            return self._error(EslError.INVALID_IMAGE_INDEX)
        expected = 2 * plane_size(self.width, self.height)
        if (
            begin.format != FORMAT_BWR_PLANES
            or (begin.width, begin.height) != (self.width, self.height)
            or begin.total_len != expected
            or not 1 <= begin.chunk_size <= self.max_chunk
        ):
            return self._error(EslError.INVALID_PARAMETERS)
        count = (begin.total_len + begin.chunk_size - 1) // begin.chunk_size
        self._xfer = _Transfer(begin, bytearray(begin.total_len), count)
        return ImageReady(
            esl_id=self.esl_id, image_index=begin.image_index, chunk_count=count
        ).encode()

    def _chunk(self, chunk: ImageChunk) -> bytes:
        def ack(status: AckStatus) -> bytes:
            return ChunkAck(esl_id=self.esl_id, seq=chunk.seq, status=status).encode()

        xfer = self._xfer
        if xfer is None or xfer.verified is not None:
            return ack(AckStatus.NOT_READY)
        if chunk.seq >= xfer.chunk_count:
            return ack(AckStatus.OUT_OF_RANGE)
        offset = chunk.seq * xfer.begin.chunk_size
        length = min(xfer.begin.chunk_size, xfer.begin.total_len - offset)
        if not chunk.intact or len(chunk.data) != length:
            self.chunks_bad += 1
            return ack(AckStatus.BAD_CRC)
        xfer.buffer[offset : offset + length] = chunk.data  # a repeat rewrites the same bytes
        xfer.received.add(chunk.seq)
        self.chunks_ok += 1
        return ack(AckStatus.OK)

    def _end(self, end: ImageEnd) -> bytes:
        xfer = self._xfer
        if xfer is None or end.image_index != xfer.begin.image_index:
            return self._error(EslError.INVALID_STATE)
        if xfer.verified is not None:  # the gateway missed our answer: say it again
            return xfer.verified.encode()
        data = bytearray(xfer.buffer)
        if self.corrupt_storage_once:
            self.corrupt_storage_once = False
            data[len(data) // 2] ^= 0x01
        crc = crc32(bytes(data))
        if len(xfer.received) < xfer.chunk_count:
            status = VerifyStatus.INCOMPLETE
        elif crc != xfer.begin.crc32:
            status = VerifyStatus.CRC_MISMATCH
        else:
            status = VerifyStatus.OK
        verify = ImageVerify(
            esl_id=self.esl_id, image_index=end.image_index, status=status, crc32=crc
        )
        if status is VerifyStatus.OK:
            self.images[end.image_index] = bytes(data)
            self.transfers_verified += 1
            xfer.verified = verify
        else:
            self._xfer = None  # a failed image is discarded; the gateway starts over
        return verify.encode()

    def _display(self, display: DisplayImage) -> bytes:
        if display.image_index not in self.images:
            return self._error(EslError.IMAGE_NOT_AVAILABLE)
        self.displayed = display.image_index
        return DisplayState(
            esl_id=self.esl_id,
            display_index=display.display_index,
            image_index=display.image_index,
        ).encode()

    def _led(self, led: LedControl) -> bytes:
        if not self.has_led or led.led_index != 0:
            return self._error(EslError.INVALID_PARAMETERS)
        self.led_commands.append(led)
        return LedState(esl_id=self.esl_id, led_index=led.led_index).encode()
