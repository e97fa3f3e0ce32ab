"""Responses, label -> gateway, all notifications on the control point."""

from __future__ import annotations

from typing import Literal

from drivers.label.ble_protocol.frame import U8, U16, U32, Frame, parse_frame
from drivers.label.ble_protocol.spec import NO_IMAGE, BasicFlags, Rsp


class ErrorResponse(Frame):
    op: Literal[Rsp.ERROR] = Rsp.ERROR
    code: U8


class LedState(Frame):
    op: Literal[Rsp.LED_STATE] = Rsp.LED_STATE
    led_index: U8


class BasicState(Frame):
    op: Literal[Rsp.BASIC_STATE] = Rsp.BASIC_STATE
    flags: U16
    battery_mv: U16
    image_index: U8 = NO_IMAGE

    @property
    def has_led(self) -> bool:
        return bool(self.flags & BasicFlags.HAS_LED)


class DisplayState(Frame):
    op: Literal[Rsp.DISPLAY_STATE] = Rsp.DISPLAY_STATE
    display_index: U8
    image_index: U8


class ImageReady(Frame):
    op: Literal[Rsp.IMAGE_READY] = Rsp.IMAGE_READY
    image_index: U8
    chunk_count: U16


class ChunkAck(Frame):
    op: Literal[Rsp.CHUNK_ACK] = Rsp.CHUNK_ACK
    seq: U16
    status: U8


class ImageVerify(Frame):
    op: Literal[Rsp.IMAGE_VERIFY] = Rsp.IMAGE_VERIFY
    image_index: U8
    status: U8
    crc32: U32


Response = (
    ErrorResponse | LedState | BasicState | DisplayState | ImageReady | ChunkAck | ImageVerify
)

_RESPONSES: dict[Rsp, type[Response]] = {
    Rsp.ERROR: ErrorResponse,
    Rsp.LED_STATE: LedState,
    Rsp.BASIC_STATE: BasicState,
    Rsp.DISPLAY_STATE: DisplayState,
    Rsp.IMAGE_READY: ImageReady,
    Rsp.CHUNK_ACK: ChunkAck,
    Rsp.IMAGE_VERIFY: ImageVerify,
}


def _fits(model: type[Response], length: int) -> bool:
    return length == model.BODY.size


def parse_response(frame: bytes) -> Response:
    """Decode one notification; :class:`ProtocolError` for anything malformed."""
    return parse_frame(frame, Rsp, _RESPONSES, _fits, "response")
