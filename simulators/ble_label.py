"""A BLE shelf label, in-process: the label side of the protocol in drivers.label.ble_protocol.

There is no radio here, so the label is driven through :class:`InMemoryLink`, which has the
same async interface as the driver's thin bleak transport (``drivers.label.ble.BleakLink``):
connect, disconnect, send_command, send_data, receive. The link can corrupt, drop or lose
frames on the way, to exercise NAKs, retransmissions and verification.

``storegw sim ble-label`` runs a demo exchange (render a product, push it, flash the LED) and
prints the frames.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image

from drivers.base import DeviceUnavailable
from drivers.label.ble_protocol import (
    BROADCAST_ESL_ID,
    CHUNK_HEADER,
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
    Rsp,
    VerifyStatus,
    crc32,
    parse_command,
    parse_response,
    plane_size,
    unpack_bwr,
)
from drivers.label.render import PALETTE_RGB

Trace = Callable[[str, bytes], None]
"""Called with ("->", frame) for each write and ("<-", frame) for each notification."""


@dataclass
class _Transfer:
    begin: ImageBegin
    buffer: bytearray
    chunk_count: int
    received: set[int] = field(default_factory=set)
    verified: ImageVerify | None = None


class BleLabelSimulator:
    """What a label firmware would do with each frame; returns the notifications it sends."""

    def __init__(
        self,
        *,
        esl_id: int = 0,
        width: int = 296,
        height: int = 128,
        battery_mv: int = 2950,
        has_led: bool = True,
        image_slots: int = 2,
        max_chunk: int = 512,
    ) -> None:
        self.esl_id = esl_id
        self.width = width
        self.height = height
        self.battery_mv = battery_mv
        self.has_led = has_led
        self.image_slots = image_slots
        self.max_chunk = max_chunk
        self.in_range = True
        """False: connecting fails, as for a label out of radio range."""
        self.mute = False
        """True: the label takes frames but never answers."""
        self.corrupt_storage_once = False
        """Flip a bit in the next assembled image, so its CRC-32 check fails once."""
        self.images: dict[int, bytes] = {}
        self.displayed: int | None = None
        self.led_commands: list[LedControl] = []
        self.chunks_ok = 0
        self.chunks_bad = 0
        self.transfers_verified = 0
        self._xfer: _Transfer | None = None

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


# --- command line ---------------------------------------------------------------------------


def describe(frame: bytes, direction: str) -> str:
    """One frame, decoded, for people."""
    try:
        decoded = parse_command(frame) if direction == "->" else parse_response(frame)
    except ProtocolError as exc:
        return f"{direction} {frame.hex()}  (undecodable: {exc})"
    fields = {
        key: value.hex() if isinstance(value, bytes) else value
        for key, value in decoded.model_dump(exclude={"op", "data"}).items()
    }
    name = type(decoded).__name__
    extra = f" +{len(decoded.data)} bytes" if isinstance(decoded, ImageChunk) else ""
    return f"{direction} {name} {fields}{extra}"


async def _demo(
    *, panel: str, mtu: int, window: int, corrupt_chunk: int | None, png: Path | None, verbose: bool
) -> None:
    from drivers.label.ble import EslSession
    from drivers.label.ble_protocol import led_color, pack_bwr
    from drivers.label.content import ProductContent, UnitPrice
    from drivers.label.render import PANELS, palette_bytes, render_label

    spec = PANELS[panel]
    label = BleLabelSimulator(esl_id=7, width=spec.width, height=spec.height)

    def trace(direction: str, frame: bytes) -> None:
        is_chunk = frame[0] == 0x31
        if verbose or not is_chunk:
            typer.echo(describe(frame, direction))
        elif direction == "<-" and frame[-1] != AckStatus.OK:
            typer.echo(describe(frame, direction) + "  <- NAK, will be sent again")

    link = InMemoryLink(
        label,
        max_write=mtu - 3,
        corrupt_chunks=() if corrupt_chunk is None else (corrupt_chunk,),
        trace=trace,
    )
    product = ProductContent(
        name="Organic Whole Milk 1 l",
        price=Decimal("1.49"),
        member_price=Decimal("1.29"),
        unit_price=UnitPrice(amount=Decimal("1.49"), unit="l"),
        url="https://shop.example.com/p/4012345678901",
        promo_text="Fresh from the farm",
    )
    rendered = render_label(product, spec)
    payload = pack_bwr(palette_bytes(rendered.image), spec.width, spec.height)
    typer.echo(f"label esl_id=7 {spec.width}x{spec.height}, image {len(payload)} bytes, MTU {mtu}")
    await link.connect()
    session = EslSession(link, 7, ack_timeout_s=0.5, window=window)
    await session.ping()
    stats = await session.push_image(payload, spec.width, spec.height)
    await session.led(LedControl(esl_id=7, color=led_color("green"), repeat=5))
    await session.ping()
    await link.disconnect()
    typer.echo(
        f"pushed {stats.chunks} chunks of {stats.chunk_size} bytes; "
        f"{stats.naks} NAK(s), {stats.retransmissions} retransmission(s), "
        f"{stats.timeouts} timeout(s); label verified {label.transfers_verified} image(s)"
    )
    if png is not None:
        label.displayed_image().save(png, format="PNG")
        typer.echo(f"the label's display saved to {png}")


def command(
    *,
    panel: Annotated[str, typer.Option(help="Panel: 2.13, 2.9 or 4.2.")] = "2.9",
    mtu: Annotated[int, typer.Option(min=23, max=517, help="ATT MTU of the simulated link.")] = 247,
    window: Annotated[int, typer.Option(min=1, max=64, help="Chunks in flight.")] = 4,
    corrupt_chunk: Annotated[
        int | None, typer.Option(min=0, help="Corrupt this chunk once in the air (NAK demo).")
    ] = 3,
    png: Annotated[
        Path | None, typer.Option("--png", help="Save what the label shows as PNG.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Print every chunk.")] = False,
) -> None:
    """Run a demo exchange with a simulated BLE label in-process (there is no radio)."""
    from drivers.label.render import PANELS

    if panel not in PANELS:
        raise typer.BadParameter(f"panel must be one of {', '.join(PANELS)}")
    asyncio.run(
        _demo(
            panel=panel,
            mtu=mtu,
            window=window,
            corrupt_chunk=corrupt_chunk,
            png=png,
            verbose=verbose,
        )
    )


__all__ = ["BleLabelSimulator", "InMemoryLink", "command", "describe"]
