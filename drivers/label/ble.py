"""BLE shelf labels: a thin bleak transport, a session that pumps the protocol over any link,
and the backend.

:class:`BleakLink` only makes bleak calls (connect, notify, write) and translates their errors;
everything that can be wrong in bytes lives in :mod:`drivers.label.ble_protocol` and is tested
without a radio through a link with the same interface (``simulators.ble_label.InMemoryLink``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from PIL import Image

from core.events import JsonObject
from drivers.base import ActionFailed, BadInput, DeviceError, DeviceUnavailable
from drivers.label.backend import FlashRequest, LabelBackend, LabelHealth, PushReceipt
from drivers.label.ble_protocol import (
    CHUNK_HEADER,
    CONTROL_POINT_UUID,
    IMAGE_DATA_UUID,
    NO_IMAGE,
    BasicState,
    Channel,
    ErrorResponse,
    ImageTransfer,
    LabelRefused,
    LedControl,
    LedState,
    NoResponse,
    Outgoing,
    Ping,
    ProtocolError,
    Response,
    TransferFailed,
    TransferStats,
    led_color,
    pack_bwr,
    parse_response,
)
from drivers.label.config import LabelConfig, LabelSpec
from drivers.label.render import palette_bytes

if TYPE_CHECKING:
    from bleak import BleakClient
    from bleak.backends.characteristic import BleakGATTCharacteristic

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Response)


class LabelLink(Protocol):
    """A connection to one label: what the session needs, nothing more."""

    @property
    def max_write(self) -> int:
        """Largest frame for one write without response on the image characteristic."""
        ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None:
        """Must not raise."""
        ...

    async def send_command(self, frame: bytes) -> None:
        """Write to the control point (with response)."""
        ...

    async def send_data(self, frame: bytes) -> None:
        """Write to the image characteristic (without response)."""
        ...

    async def receive(self, timeout: float) -> bytes:
        """Next notification from the control point; TimeoutError if none in time."""
        ...


class BleakLink:
    """The real radio: bleak calls only. Errors become DeviceUnavailable here, at the boundary.

    Without BlueZ/D-Bus bleak raises a plain FileNotFoundError (not BleakError); that too means
    "not reachable, retry later".
    """

    def __init__(
        self, device_id: str, address: str, *, adapter: str = "hci0", connect_timeout_s: float = 20
    ) -> None:
        self.device_id = device_id
        self.address = address
        self.adapter = adapter
        self.connect_timeout_s = connect_timeout_s
        self._client: BleakClient | None = None
        self._notifications: asyncio.Queue[bytes] = asyncio.Queue()
        self._max_write = 20

    @property
    def max_write(self) -> int:
        return self._max_write

    def _fail(self, exc: BaseException, what: str) -> DeviceUnavailable:
        return DeviceUnavailable(
            self.device_id, "ble", f"{what} {self.address}: {type(exc).__name__}: {exc}"
        )

    def _on_notify(self, _sender: BleakGATTCharacteristic, data: bytearray) -> None:
        self._notifications.put_nowait(bytes(data))

    async def connect(self) -> None:
        from bleak import BleakClient
        from bleak.exc import BleakError

        client = BleakClient(
            self.address, bluez={"adapter": self.adapter}, timeout=self.connect_timeout_s
        )
        try:
            await client.connect()
            self._client = client
            await client.start_notify(CONTROL_POINT_UUID, self._on_notify)
            data_char = client.services.get_characteristic(IMAGE_DATA_UUID)
        except (BleakError, OSError, TimeoutError, EOFError) as exc:
            await self.disconnect()
            raise self._fail(exc, "connect") from exc
        if data_char is None:
            await self.disconnect()
            raise ActionFailed(
                self.device_id, "not_a_label", f"{self.address} has no ESL image characteristic"
            )
        self._max_write = max(CHUNK_HEADER + 1, data_char.max_write_without_response_size)

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.disconnect()
        except Exception:  # closing must not raise; the link is gone either way
            log.debug("ble disconnect failed", extra={"address": self.address}, exc_info=True)

    async def _write(self, uuid: str, frame: bytes, *, response: bool) -> None:
        from bleak.exc import BleakError

        if self._client is None:
            raise DeviceUnavailable(self.device_id, "ble", f"{self.address}: not connected")
        try:
            await self._client.write_gatt_char(uuid, frame, response=response)
        except (BleakError, OSError, TimeoutError, EOFError) as exc:
            raise self._fail(exc, "write to") from exc

    async def send_command(self, frame: bytes) -> None:
        await self._write(CONTROL_POINT_UUID, frame, response=True)

    async def send_data(self, frame: bytes) -> None:
        await self._write(IMAGE_DATA_UUID, frame, response=False)

    async def receive(self, timeout: float) -> bytes:
        return await asyncio.wait_for(self._notifications.get(), timeout)


@dataclass(slots=True, eq=False)
class EslSession:
    """Runs protocol exchanges with one label over a connected link."""

    link: LabelLink
    esl_id: int
    _: KW_ONLY
    ack_timeout_s: float = 2.0
    """How long to wait for a response before repeating what is outstanding."""
    window: int = 4
    max_retries: int = 5

    async def _send(self, out: list[Outgoing]) -> None:
        for item in out:
            if item.channel is Channel.DATA:
                await self.link.send_data(item.frame)
            else:
                await self.link.send_command(item.frame)

    async def _next_response(self) -> Response:
        """Next decodable notification; garbage is skipped (radio noise)."""
        while True:
            frame = await self.link.receive(self.ack_timeout_s)
            try:
                return parse_response(frame)
            except ProtocolError as exc:
                log.debug("ble garbage frame", extra={"frame": frame.hex(), "error": str(exc)})

    async def request(self, frame: bytes, expect: type[R]) -> R:
        """Send a command and wait for its answer, repeating it on silence."""
        for _ in range(self.max_retries + 1):
            await self.link.send_command(frame)
            try:
                while True:
                    response = await self._next_response()
                    if response.esl_id != self.esl_id:
                        continue
                    if isinstance(response, ErrorResponse):
                        raise LabelRefused(response.code)
                    if isinstance(response, expect):
                        return response
            except TimeoutError:
                continue
        raise NoResponse(f"no {expect.__name__} after {self.max_retries + 1} tries")

    async def ping(self) -> BasicState:
        return await self.request(Ping(esl_id=self.esl_id).encode(), BasicState)

    async def led(self, command: LedControl) -> LedState:
        return await self.request(command.encode(), LedState)

    async def push_image(
        self, payload: bytes, width: int, height: int, *, image_index: int = 0
    ) -> TransferStats:
        transfer = ImageTransfer(
            esl_id=self.esl_id,
            image_index=image_index,
            width=width,
            height=height,
            payload=payload,
            chunk_size=min(0xFFFF, self.link.max_write - CHUNK_HEADER),
            window=self.window,
            max_retries=self.max_retries,
        )
        await self._send(transfer.start())
        while not transfer.done:
            try:
                response = await self._next_response()
            except TimeoutError:
                out = transfer.on_timeout()
            else:
                out = transfer.on_response(response)
            await self._send(out)
        return transfer.stats


LinkFactory = Callable[[LabelSpec], LabelLink]


class BleBackend(LabelBackend):
    """One adapter, one connection at a time: connect, exchange, disconnect."""

    name = "ble"
    can_poll = False
    max_concurrency = 1

    def __init__(self, config: LabelConfig, *, link_factory: LinkFactory | None = None) -> None:
        super().__init__(config)
        self._link_factory = link_factory or self._bleak_link
        self._radio = asyncio.Lock()

    def _bleak_link(self, label: LabelSpec) -> LabelLink:
        return BleakLink(
            self.device_id,
            label.id,
            adapter=self.config.adapter,
            connect_timeout_s=self.config.ble_connect_timeout_s,
        )

    def _session(self, link: LabelLink, label: LabelSpec) -> EslSession:
        return EslSession(
            link,
            label.esl_id,
            ack_timeout_s=self.config.ble_ack_timeout_s,
            window=self.config.ble_window,
            max_retries=self.config.ble_chunk_retries,
        )

    def _translate(self, label: LabelSpec, exc: ProtocolError) -> DeviceError:
        """A silent label may answer later; a refusal or a failed transfer is an answer; a
        broken frame is garbage."""
        where = f"label {label.id}: {exc.message}"
        if isinstance(exc, NoResponse):
            return DeviceUnavailable(self.device_id, exc.code, where)
        if isinstance(exc, LabelRefused | TransferFailed):
            return ActionFailed(self.device_id, exc.code, where)
        return BadInput(self.device_id, exc.code, where)

    @staticmethod
    def _health(label: LabelSpec, state: BasicState) -> LabelHealth:
        return LabelHealth(
            label=label.id,
            battery_mv=state.battery_mv or None,
            last_seen=datetime.now(UTC),
            has_led=state.has_led,
            image_index=None if state.image_index == NO_IMAGE else state.image_index,
        )

    async def push(self, label: LabelSpec, image: Image.Image) -> PushReceipt:
        width, height = image.size
        payload = await asyncio.to_thread(pack_bwr, palette_bytes(image), width, height)
        async with self._radio:
            link = self._link_factory(label)
            await link.connect()
            try:
                session = self._session(link, label)
                await session.ping()  # wakes the label and checks it is the one we mean
                stats = await session.push_image(payload, width, height)
                state = await session.ping()
            except ProtocolError as exc:
                raise self._translate(label, exc) from exc
            finally:
                await link.disconnect()
        details: JsonObject = {
            "bytes": len(payload),
            "chunks": stats.chunks,
            "chunk_size": stats.chunk_size,
            "retransmissions": stats.retransmissions,
            "naks": stats.naks,
            "timeouts": stats.timeouts,
        }
        return PushReceipt(stage="label", details=details, health=self._health(label, state))

    async def flash(self, label: LabelSpec, request: FlashRequest) -> JsonObject:
        if label.led is False:
            raise ActionFailed(self.device_id, "no_led", f"label {label.id} has no LED")
        if request.pattern is not None and len(request.pattern) != 10:
            raise ActionFailed(
                self.device_id, "bad_pattern", "a BLE LED pattern is 5 bytes (10 hex characters)"
            )
        command = LedControl(
            esl_id=label.esl_id,
            color=led_color(request.color),
            pattern=bytes.fromhex(request.pattern) if request.pattern else b"\xaa" * 5,
            repeat_seconds=True,
            repeat=max(1, round(request.duration_s)),
        )
        async with self._radio:
            link = self._link_factory(label)
            await link.connect()
            try:
                session = self._session(link, label)
                state = await session.ping()
                if not state.has_led:
                    raise ActionFailed(self.device_id, "no_led", f"label {label.id} reports no LED")
                await session.led(command)
            except ProtocolError as exc:
                raise self._translate(label, exc) from exc
            finally:
                await link.disconnect()
        return {
            "stage": "label",
            "pattern": command.pattern.hex().upper(),
            "seconds": command.repeat,
        }

    async def status(self, label: LabelSpec) -> LabelHealth:
        async with self._radio:
            link = self._link_factory(label)
            await link.connect()
            try:
                state = await self._session(link, label).ping()
            except ProtocolError as exc:
                raise self._translate(label, exc) from exc
            finally:
                await link.disconnect()
        return self._health(label, state)


__all__ = ["BleBackend", "BleakLink", "EslSession", "LabelLink", "LinkFactory"]
