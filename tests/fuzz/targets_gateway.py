"""Fuzz targets for the gateway's other parsers: RPC replies, the cloud's keys, local API
bodies, config files, scanned coupon and member texts, the cloud's enrolment answer."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import jwt
import tomli_w
from aiohttp import web
from pydantic import BaseModel, ValidationError

from core.safejson import BadJson
from gateway.api.app import _body
from gateway.config import ConfigError, load_config
from gateway.counter.errors import CounterError
from gateway.counter.keys import CloudKeys
from gateway.counter.origin import Origin
from gateway.counter.request_models import (
    AccrueRequest,
    CheckinRequest,
    IdentifyRequest,
    RedeemRequest,
)
from gateway.kiosk.models import ClaimRequest
from gateway.rpc import RpcClient, RpcError, RpcRefused
from gateway.wire.enrolment import decode_response
from gateway.wire.tokens import (
    TokenError,
    make_member_qr,
    sign_coupon,
    verify_coupon,
    verify_member_qr,
)
from tests.fuzz import core
from tests.fuzz.core import ContractBroken, Target
from tests.fuzz.identities import CLOUD, COUPON, CREDENTIAL, JWKS, KEYS, NOW, PHONE
from tests.fuzz.strategies import DEEP_JSON, NESTED_JSON, json_variants
from tests.fuzz.targets_commands import gateway
from tests.fuzz.targets_labels import LABEL_DEVICE

# --- RPC replies from the cloud ----------------------------------------------------------------


async def _rpc_call(payload: bytes) -> object:
    sent: list[bytes] = []

    async def sender(topic: str, body: bytes, reply_topic: str, correlation: bytes) -> None:
        sent.append(correlation)

    client = RpcClient(lambda method: f"storegw/v1/S001/gw-1/rpc/{method}", "rpc-reply")
    client.attach(sender)
    call = asyncio.ensure_future(client.call("member.identify", {"by": "qr"}, timeout=5.0))
    await asyncio.sleep(0)  # one step: the call publishes and waits for its reply
    if not sent:
        call.cancel()
        raise ContractBroken("the RPC call did not publish its request")
    try:
        client.resolve(sent[0], payload)
    except BaseException:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        raise
    data = await call
    if not isinstance(data, dict):
        raise ContractBroken("call() returned something other than an object")
    return data


def rpc_reply(data: bytes) -> object:
    """A reply on the gateway's RPC reply topic, routed to the call waiting for it."""
    return core.run(_rpc_call(data))


RPC_DOCS: list[Any] = [
    {"ok": True, "data": {"member": {"member_id": "M1001", "name": "Ana", "points": 120}}},
    {
        "ok": False,
        "error": {
            "code": "unknown_member",
            "message": "no such member",
            "details": {"member_id": "M9"},
        },
    },
    {"ok": True},
]


def json_answer(
    name: str,
    parse: Callable[[bytes], object],
    allowed: tuple[type[BaseException], ...],
    docs: list[Any],
) -> Target:
    """A cloud answer: its real documents, each varied, and nesting deeper than parsers take."""
    return Target(
        name=name,
        parse=parse,
        allowed=allowed,
        seeds=(*(json.dumps(d).encode() for d in docs), DEEP_JSON),
        structured=json_variants(docs) | NESTED_JSON,
        max_len=270_000,
    )


RPC = json_answer("gateway.rpc_reply", rpc_reply, (RpcRefused, RpcError), RPC_DOCS)

# --- the cloud's keys (retained JWKS) ----------------------------------------------------------


@functools.cache
def _cloud_keys() -> CloudKeys:
    return CloudKeys(core.workdir() / "cloud-keys.json")


def cloud_keys(data: bytes) -> object:
    """The retained JWKS on ``cloud/keys`` through ``CloudKeys.on_message`` (garbage is logged
    and ignored there; a good set is cached to a file)."""
    keys = _cloud_keys()
    keys.on_message(data)
    return keys.keyset


KEY_DOCS: list[Any] = [
    JWKS,
    {
        "keys": [
            *JWKS["keys"],
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
            {**JWKS["keys"][0], "kid": "enc", "use": "enc"},
        ]
    },
    {"keys": []},
]
KEYS_TARGET = Target(
    name="gateway.cloud_keys",
    parse=cloud_keys,
    allowed=(),  # on_message logs and ignores a bad set
    # DEEP_JSON is over the 64 KiB key set limit; 60,000 levels are under it, so too deep.
    seeds=(*(json.dumps(d).encode() for d in KEY_DOCS), DEEP_JSON, b"[" * 60_000),
    structured=json_variants(KEY_DOCS) | NESTED_JSON,
    max_len=200_000,
)

# --- local API request bodies ------------------------------------------------------------------


class _Request:
    """What ``gateway.api.app._body`` reads of an aiohttp request: its length and its bytes."""

    def __init__(self, raw: bytes) -> None:
        self.content_length = len(raw)
        self._raw = raw

    async def read(self) -> bytes:
        return self._raw


API_MODELS: dict[bytes, type[BaseModel]] = {
    b"identify": IdentifyRequest,
    b"redeem": RedeemRequest,
    b"accrue": AccrueRequest,
    b"checkin": CheckinRequest,
    b"claim": ClaimRequest,
}


def api_body(data: bytes) -> object:
    """``operation\\n body``: a POST body through the API's body parser into its model."""
    op, _, raw = data.partition(b"\n")
    model = API_MODELS.get(op, IdentifyRequest)
    return core.run(_body(cast(web.Request, _Request(raw)), model))


API_DOCS: dict[bytes, list[Any]] = {
    b"identify": [
        {"till": "till-1", "by": "qr", "code": make_member_qr(CREDENTIAL, PHONE, at=NOW)},
        {"till": "till-1", "by": "card", "uid": "04:A1:B2:C3"},
        {"till": "till-1", "by": "member_id", "member_id": "M1001"},
    ],
    b"redeem": [
        {
            "till": "till-1",
            "coupon": sign_coupon(COUPON, CLOUD),
            "member_id": "M1001",
            "redemption_id": "rd-1",
        }
    ],
    b"accrue": [
        {
            "till": "till-1",
            "amount": "12.90",
            "currency": "EUR",
            "member_id": "M1001",
            "receipt_id": "R-1",
            "items": [{"sku": "4006381333931", "qty": 2, "price": "6.45"}],
        }
    ],
    b"checkin": [{"till": "till-1", "appointment_id": "A-1", "member_id": "M1001"}],
    b"claim": [{"till": "kiosk-1", "member_id": "M1001", "offer_id": "O-1", "claim_id": "c-1"}],
}


def _api_target(name: str, parse: Callable[[bytes], object]) -> Target:
    return Target(
        name=name,
        parse=parse,
        allowed=(CounterError,),  # ApiError (a bad body) is one; a refusal is another
        seeds=(
            *(op + b"\n" + json.dumps(d).encode() for op, docs in API_DOCS.items() for d in docs),
            b"accrue\n" + b"[" * 60_000,  # deep, yet under the 64 KiB body limit
        ),
        structured=(
            json_variants(API_DOCS[b"accrue"]).map(lambda b: b"accrue\n" + b)
            | json_variants(API_DOCS[b"identify"]).map(lambda b: b"identify\n" + b)
            | json_variants(API_DOCS[b"redeem"]).map(lambda b: b"redeem\n" + b)
            | NESTED_JSON.map(lambda b: b"checkin\n" + b)
        ),
        max_len=70_000,
    )


def counter_operation(data: bytes) -> object:
    """``operation\\n body`` as a till POSTs it, then the counter deciding it offline (the cloud
    is never reachable here): tokens checked against the pinned cloud key, the single-use
    ledger, till sessions, events into the outbox. An answer, or a typed CounterError."""
    op, _, raw = data.partition(b"\n")
    service = gateway().counter
    assert service is not None
    operations: dict[bytes, Callable[[Any, Origin], Awaitable[BaseModel]]] = {
        b"identify": service.identify,
        b"redeem": service.redeem,
        b"accrue": service.accrue,
        b"checkin": service.checkin,
    }

    async def run() -> BaseModel:
        req = await _body(cast(web.Request, _Request(raw)), API_MODELS.get(op, IdentifyRequest))
        operation = operations.get(op)
        return req if operation is None else await operation(req, Origin(source="api"))

    return core.run(run())


API = _api_target("api.body", api_body)
COUNTER = _api_target("api.counter", counter_operation)

# --- config files ------------------------------------------------------------------------------

CONFIG_DOC: dict[str, Any] = {
    "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": "/var/lib/storegw"},
    "mqtt": {"url": "mqtts://broker.example.com:8883", "keepalive_s": 30, "replay_share": 0.8},
    "outbox": {"durability": "power-loss", "max_bytes": 536870912},
    "counter": {"offline_max_value": "20.00"},
    "api": {"listen": "127.0.0.1:8080"},
    "kiosks": [{"name": "kiosk-1", "devices": ["scanner-1"]}],
    "devices": [
        {"id": "scanner-1", "kind": "scanner", "port": "/dev/ttyACM0", "terminator": "CR"},
        {"id": "card-1", "kind": "smartcard", "reader": "ACS*", "member_aid": "F05354475701"},
        {"id": "nfc-1", "kind": "nfc", "device": "usb"},
        LABEL_DEVICE,
    ],
}


def config_file(data: bytes) -> object:
    """A config file as ``storegw config check`` / ``run`` loads it."""
    path = core.workdir() / "storegw.toml"
    path.write_bytes(data)
    return load_config(path, environ={})


CONFIG = Target(
    name="gateway.config",
    parse=config_file,
    allowed=(ConfigError,),
    seeds=(
        tomli_w.dumps(CONFIG_DOC).encode(),
        b'[gateway]\nstore_id = "S001"\ngateway_id = "gw-1"\ndata_dir = "/tmp/x"\n'
        b'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n',
        b"a = " + b"[" * 5000,
        b"a = " + b"{b = " * 5000,
    ),
    max_len=64 * 1024,
)

# --- scanned tokens: coupons and member QR codes -----------------------------------------------


def token_text(data: bytes) -> object:
    """A scanned text as the counter checks it: coupon or member code, offline."""
    text = data.decode("utf-8", "replace")
    if text.startswith("SGM1:"):
        return verify_member_qr(text, KEYS, now=NOW)
    return verify_coupon(text, KEYS, store_id="S001", now=NOW)


TOKENS = Target(
    name="tokens.text",
    parse=token_text,
    allowed=(TokenError,),
    seeds=(
        sign_coupon(COUPON, CLOUD).encode(),
        make_member_qr(CREDENTIAL, PHONE, at=NOW).encode(),
        b"SGC1:eyJhbGciOiJub25lIn0.e30.",
        b"SGM1:a.b.c~1796400000~" + b"A" * 86,
    ),
    max_len=9000,
)


def signed_claims(data: bytes) -> object:
    """Claims the cloud signed (a buggy or compromised issuer): JSON ``[kind, claims]`` is
    signed with the cloud key and scanned; the claim parser behind the signature is fuzzed."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None  # not a token the cloud could have signed
    if not (isinstance(doc, list) and len(doc) == 2 and isinstance(doc[1], dict)):
        return None
    token = jwt.encode(doc[1], CLOUD.private, algorithm="EdDSA", headers={"kid": CLOUD.kid})
    if doc[0] == "member":
        return verify_member_qr(make_member_qr(token, PHONE, at=NOW), KEYS, now=NOW)
    return verify_coupon("SGC1:" + token, KEYS, store_id="S001", now=NOW)


CLAIM_DOCS: list[Any] = [
    ["coupon", jwt.decode(sign_coupon(COUPON, CLOUD)[5:], options={"verify_signature": False})],
    ["member", jwt.decode(CREDENTIAL, options={"verify_signature": False})],
]
CLAIMS = Target(
    name="tokens.signed_claims",
    parse=signed_claims,
    allowed=(TokenError,),
    seeds=tuple(json.dumps(d).encode() for d in CLAIM_DOCS),
    structured=json_variants(CLAIM_DOCS),
    max_len=4096,
)

# --- the cloud's enrolment answer (provision enroll) -------------------------------------------

ENROL_DOCS: list[Any] = [
    {
        "v": 1,
        "nonce": "n-1",
        "ok": True,
        "certificate": "PEM",
        "ca": "PEM",
        "broker_url": "mqtts://c",
    },
    {
        "v": 1,
        "nonce": "n-1",
        "ok": False,
        "error": {"code": "rate_limited", "message": "wait", "retry_after_s": 4.0},
    },
]
ENROL = json_answer(
    "provision.enrol_answer", decode_response, (BadJson, ValidationError), ENROL_DOCS
)


def close() -> None:
    _cloud_keys.cache_clear()


GATEWAY_TARGETS = (RPC, KEYS_TARGET, API, COUNTER, CONFIG, TOKENS, CLAIMS, ENROL)
