"""Commands, gateway -> label: encoded by the gateway, decoded by the label (the simulator)."""

from __future__ import annotations

import struct
from typing import Literal, Self

from pydantic import Field

from drivers.label.ble_protocol.frame import U8, U16, U32, Frame, parse_frame
from drivers.label.ble_protocol.image import crc16
from drivers.label.ble_protocol.spec import CHUNK_HEADER, FORMAT_BWR_PLANES, Op


class Ping(Frame):
    op: Literal[Op.PING] = Op.PING


class DisplayImage(Frame):
    op: Literal[Op.DISPLAY_IMAGE] = Op.DISPLAY_IMAGE
    display_index: U8 = 0
    image_index: U8


class ImageBegin(Frame):
    op: Literal[Op.IMAGE_BEGIN] = Op.IMAGE_BEGIN
    image_index: U8
    width: U16
    height: U16
    format: U8 = FORMAT_BWR_PLANES
    total_len: U32
    crc32: U32
    chunk_size: U16


class ImageChunk(Frame):
    """``seq:u16 crc16:u16`` then the chunk's bytes, however many."""

    BODY = struct.Struct("<HH")
    FIELDS = ("seq", "crc16")
    op: Literal[Op.IMAGE_CHUNK] = Op.IMAGE_CHUNK
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
        return super().encode() + self.data

    @classmethod
    def decode(cls, esl_id: int, body: bytes) -> Self:
        seq, crc = cls.BODY.unpack_from(body)
        return cls(esl_id=esl_id, seq=seq, crc16=crc, data=body[cls.BODY.size :])


class ImageEnd(Frame):
    op: Literal[Op.IMAGE_END] = Op.IMAGE_END
    image_index: U8


class LedControl(Frame):
    """ESL LED Control: colour (2 bits each of red, green, blue, brightness), a 40-bit pattern
    played bit by bit with on/off periods, repeated ``repeat`` times or for ``repeat`` seconds."""

    BODY = struct.Struct("<BB5sBBH")
    op: Literal[Op.LED_CONTROL] = Op.LED_CONTROL
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
        body = self.BODY.pack(
            self.led_index, self.color, self.pattern, self.off_period, self.on_period, repeats
        )
        return bytes((self.op, self.esl_id)) + body

    @classmethod
    def decode(cls, esl_id: int, body: bytes) -> Self:
        led, color, pattern, off, on, repeats = cls.BODY.unpack(body)
        return cls(
            esl_id=esl_id,
            led_index=led,
            color=color,
            pattern=pattern,
            off_period=off,
            on_period=on,
            repeat_seconds=bool(repeats & 1),
            repeat=repeats >> 1,
        )


Command = Ping | DisplayImage | ImageBegin | ImageChunk | ImageEnd | LedControl

_COMMANDS: dict[Op, type[Command]] = {
    Op.PING: Ping,
    Op.DISPLAY_IMAGE: DisplayImage,
    Op.IMAGE_BEGIN: ImageBegin,
    Op.IMAGE_CHUNK: ImageChunk,
    Op.IMAGE_END: ImageEnd,
    Op.LED_CONTROL: LedControl,
}


def _fits(model: type[Command], length: int) -> bool:
    if model is ImageChunk:
        return length >= CHUNK_HEADER - 2
    return length == model.BODY.size


def parse_command(frame: bytes) -> Command:
    """Decode one command (the label side; used by the simulator and by tests)."""
    return parse_frame(frame, Op, _COMMANDS, _fits, "command")
