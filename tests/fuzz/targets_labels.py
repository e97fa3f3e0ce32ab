"""Fuzz targets for the shelf-label drivers: OEPL access point answers and BLE label frames."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from drivers.base import BadInput
from drivers.label import ble_protocol as ble
from drivers.label.config import LabelConfig
from drivers.label.oepl import OeplBackend, OeplClient
from drivers.label.tagtypes import lookup, upstream_json
from tests.fuzz import core
from tests.fuzz.core import Target
from tests.fuzz.mutate import frames, pack_frames
from tests.fuzz.strategies import NESTED_JSON, json_variants

MAC = "0000021B3C4D5E6F"
TAG = {
    "mac": MAC,
    "hash": "0" * 32,
    "lastseen": 1796400000,
    "nextupdate": 0,
    "pending": 0,
    "alias": "aisle 3",
    "LQI": 100,
    "RSSI": -60,
    "temperature": 21,
    "batteryMv": 2900,
    "hwType": 1,
    "contentMode": 24,
    "isexternal": False,
    "apip": "0.0.0.0",
}
DB_PAGES: list[Any] = [
    {
        "tags": [TAG, {**TAG, "mac": "0000021B3C4D5E70", "batteryMv": 1337, "lastseen": 0}],
        "continu": 2,
    },
    {"tags": [TAG]},
    {"tags": []},
    # Found by fuzzing: beyond uint32, health() raised OverflowError and the poll failed.
    {"tags": [{**TAG, "lastseen": 10**20}]},
]


class _ServedAp(OeplClient):
    """The real client (``_request``'s status rules, its decode of every answer) with the
    network swapped for one fuzzed 200 answer to any request."""

    body = b""

    async def _send(
        self, method: str, path: str, *, params: dict[str, str] | None, data: Any
    ) -> tuple[int, bytes]:
        return 200, self.body


LABEL_DEVICE: dict[str, Any] = {
    "id": "labels-1",
    "kind": "label",
    "backend": "oepl",
    "url": "http://192.168.1.50",
    "labels": [{"id": MAC, "panel": "2.9"}],
}
_LABELS = LabelConfig.model_validate(LABEL_DEVICE)


def _oepl_backend() -> OeplBackend:
    """A fresh backend per case: no tag type or hwType cached from an earlier input."""
    backend = OeplBackend(_LABELS)
    backend.client = _ServedAp(str(_LABELS.url), device_id=_LABELS.id, retries=0)
    return backend


def oepl_db_page(data: bytes) -> object:
    """A ``/get_db`` answer (the same body for every page) through ``OeplBackend.poll``: the
    client's paging and decode, then each label's health, as the label driver polls."""
    backend = _oepl_backend()
    assert isinstance(backend.client, _ServedAp)
    backend.client.body = data
    return core.run(backend.poll())


def oepl_tagtype(data: bytes) -> object:
    """A ``/tagtypes/XX.json`` answer through the backend's tag type lookup (``_type_of``):
    what sizes and colours the renderer draws a label with."""
    backend = _oepl_backend()
    assert isinstance(backend.client, _ServedAp)
    backend.client.body = data
    return core.run(backend._type_of(0x33))


OEPL = Target(
    name="label.oepl_get_db",
    parse=oepl_db_page,
    allowed=(BadInput,),  # bad_json, bad_pagination: the poll fails with a typed error
    seeds=(*(json.dumps(p).encode() for p in DB_PAGES), b"[" * 100_000),
    structured=json_variants(DB_PAGES) | NESTED_JSON,
    max_len=200_000,
)
TAGTYPE_DOCS: list[Any] = [
    *(upstream_json(t) for t in (lookup(0x33), lookup(0x26)) if t is not None),
    # Found by fuzzing: a list colortable holding a list raised TypeError (unhashable).
    {"name": "x", "width": 296, "height": 128, "colortable": [["white"], "black"]},
]
OEPL_TAGTYPE = Target(
    name="label.oepl_tagtype",
    parse=oepl_tagtype,
    allowed=(BadInput,),  # bad_json, unsupported_tag_type
    seeds=(*(json.dumps(d).encode() for d in TAGTYPE_DOCS), b'{"colortable":' * 40),
    structured=json_variants(TAGTYPE_DOCS) | NESTED_JSON,
    max_len=64 * 1024,
)

ESL = 7
BLE_PAYLOAD = ble.pack_bwr(bytes(i % 3 for i in range(16 * 4)), 16, 4)


def _transfer() -> ble.ImageTransfer:
    return ble.ImageTransfer(
        esl_id=ESL, image_index=1, width=16, height=4, payload=BLE_PAYLOAD, chunk_size=8, window=2
    )


def _happy_responses(nak: bool = False) -> list[bytes]:
    t = _transfer()
    count = t.stats.chunks
    out = [ble.ImageReady(esl_id=ESL, image_index=1, chunk_count=count).encode()]
    if nak:
        out.append(ble.ChunkAck(esl_id=ESL, seq=0, status=ble.AckStatus.BAD_CRC).encode())
        out.append(b"")  # a timeout
    out += [ble.ChunkAck(esl_id=ESL, seq=s, status=0).encode() for s in range(count)]
    out.append(ble.ImageVerify(esl_id=ESL, image_index=1, status=0, crc32=t.image_crc).encode())
    out.append(ble.DisplayState(esl_id=ESL, display_index=0, image_index=1).encode())
    return out


def ble_transfer(data: bytes) -> object:
    """A label's notifications (length-prefixed frames; an empty one is a timeout) fed to the
    sender's state machine for one image, as ``drivers.label.ble`` drives it."""
    transfer = _transfer()
    transfer.start()
    for frame in frames(data):
        if transfer.done:
            break
        if frame:
            transfer.on_response(ble.parse_response(frame))
        else:
            transfer.on_timeout()
    return transfer.phase


RESPONSE_SEEDS = (
    ble.ErrorResponse(esl_id=ESL, code=ble.EslError.RETRY).encode(),
    ble.LedState(esl_id=ESL, led_index=0).encode(),
    ble.BasicState(esl_id=ESL, flags=0x102, battery_mv=2900, image_index=1).encode(),
    *_happy_responses()[:2],
    *_happy_responses()[-2:],
)
BLE_RESPONSE = Target(
    name="label.ble_response",
    parse=ble.parse_response,
    allowed=(ble.ProtocolError,),
    seeds=RESPONSE_SEEDS,
    max_len=64,
)
BLE_COMMAND = Target(
    name="label.ble_command",
    parse=ble.parse_command,
    allowed=(ble.ProtocolError,),
    seeds=(
        *(frame.frame for frame in _transfer().start()),
        ble.Ping(esl_id=ESL).encode(),
        ble.ImageChunk.of(ESL, 3, b"\x01\x02\x03").encode(),
        ble.ImageEnd(esl_id=ESL, image_index=1).encode(),
        ble.DisplayImage(esl_id=ESL, image_index=1).encode(),
        ble.LedControl(esl_id=ESL).encode(),
    ),
    max_len=300,
)
BLE_TRANSFER = Target(
    name="label.ble_transfer",
    parse=ble_transfer,
    allowed=(ble.ProtocolError,),  # LabelRefused, TransferFailed, VerifyFailed, NoResponse
    seeds=(
        pack_frames(_happy_responses()),
        pack_frames(_happy_responses(nak=True)),
        pack_frames([b"", b"", *_happy_responses()[:3], RESPONSE_SEEDS[0]]),
    ),
    structured=st.lists(st.sampled_from(RESPONSE_SEEDS) | st.binary(max_size=12), max_size=30).map(
        pack_frames
    ),
    max_len=1024,
)

LABEL_TARGETS = (OEPL, OEPL_TAGTYPE, BLE_RESPONSE, BLE_COMMAND, BLE_TRANSFER)
