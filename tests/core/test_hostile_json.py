"""Hostile JSON at every parse of outside input: one typed ``bad_json``, never an exception.

The payloads are byte scripts of what a peer can send: 100k ``[`` (the 200 KB body that raised
RecursionError and ended the daemon), nesting hidden behind an object key, numbers JSON cannot
carry, lone surrogates, invalid UTF-8.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from core import safejson
from drivers.base import BadInput
from drivers.label.oepl_client import OeplClient
from gateway.commands import MAX_COMMAND_BYTES, Dispatcher
from gateway.control import ControlServer
from gateway.counter.keys import CloudKeys
from gateway.rpc import RpcClient, RpcError
from gateway.wire.tokens import KeySet, SigningKey, TokenError, verify_coupon

DEEP_LIST = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000
DEEP_IN_ARGS = b'{"args": {"x": ' + b"[" * 100_000 + b"}}"
HOSTILE = [
    DEEP_LIST,
    DEEP_OBJECT,
    DEEP_IN_ARGS,
    b"[" * 33 + b"]" * 33,
    b'{"n": 1e400}',
    b'{"n": -1e999}',
    b'{"s": "\\ud800"}',
    b'{"s": "\xff"}',
    b"NaN",
    b'{"a": 1} trailing',
    b"9" * 5000,
]


@pytest.mark.parametrize("payload", HOSTILE, ids=lambda p: repr(p[:16]))
def test_every_hostile_document_is_one_typed_error(payload: bytes) -> None:
    with pytest.raises(safejson.BadJson) as err:
        safejson.loads(payload)
    assert err.value.code == "bad_json"


def test_documents_of_the_contract_still_parse_and_brackets_in_strings_do_not_count() -> None:
    assert safejson.loads(b'{"a": [1, 2.5, {"b": null}], "c": "\\u00e9"}') == {
        "a": [1, 2.5, {"b": None}],
        "c": "é",
    }
    assert safejson.loads(b"[" * 32 + b"]" * 32) is not None  # the limit itself is allowed
    brackets = json.dumps({"code": "[" * 1000, "q": '"{' * 500}).encode()
    assert safejson.loads(brackets) == json.loads(brackets)
    assert safejson.loads(b'{"e": 1E5, "f": 1.5e-3}') == {"e": 100000.0, "f": 0.0015}


def test_the_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(safejson.BadJson, match="over 10 bytes"):
        safejson.loads(b'{"a": "12345678"}', max_bytes=10)


@pytest.mark.parametrize("payload", [DEEP_LIST, DEEP_IN_ARGS, b'{"args": {"n": 1e400}}'])
async def test_the_dispatcher_answers_bad_json(payload: bytes) -> None:
    assert len(payload) < MAX_COMMAND_BYTES  # under the size limit: the depth is what matters
    result = await Dispatcher().dispatch("ping", payload)
    assert result["ok"] is False
    assert result["error"]["code"] == "bad_json"  # type: ignore[index,call-overload]


async def test_the_control_socket_answers_bad_json(tmp_path: Path) -> None:
    server = ControlServer(tmp_path / "control.sock", Dispatcher())
    for line in (DEEP_LIST + b"\n", b'{"command": "ping", "args": ' + DEEP_LIST + b"}\n"):
        result = await server.handle(line)
        assert result["error"]["code"] == "bad_json"  # type: ignore[index,call-overload]


async def test_a_nested_rpc_reply_fails_only_its_call() -> None:
    sent: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def sender(topic: str, payload: bytes, reply: str, corr: bytes) -> None:
        sent.set_result(corr)

    rpc = RpcClient(lambda m: f"rpc/{m}", "rpc-reply")
    rpc.attach(sender)
    call = asyncio.create_task(rpc.call("member.identify", {}, timeout=5))
    rpc.resolve(await sent, DEEP_LIST)  # was RecursionError, out of the bridge's message loop
    with pytest.raises(RpcError, match="malformed reply"):
        await call


def test_nested_cloud_keys_are_ignored_and_the_old_set_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = CloudKeys(tmp_path / "cloud-keys.json")
    good = KeySet.of(SigningKey.generate("k1"))
    keys.on_message(json.dumps(good.to_jwks()).encode())
    with caplog.at_level(logging.WARNING):
        keys.on_message(b'{"keys": ' + DEEP_LIST + b"}")
    assert keys.keyset.kids == ["k1"]
    assert "ignoring malformed cloud keys" in caplog.text
    (tmp_path / "cloud-keys.json").write_bytes(DEEP_LIST)  # a cache that went bad on disk
    restarted = CloudKeys(tmp_path / "cloud-keys.json")
    restarted.load()
    assert restarted.keyset.kids == []


async def test_a_label_ap_answer_nested_deep_is_bad_input() -> None:
    """A real HTTP server in the AP's place answers get_db with a nested body."""

    async def get_db(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"tags": ' + DEEP_LIST + b"}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/get_db", get_db)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = OeplClient(f"http://127.0.0.1:{port}", device_id="ap-1")
    try:
        await client.open()
        with pytest.raises(BadInput) as err:
            await client.get_paged_tags()
        assert err.value.reason == "bad_json"
    finally:
        await client.close()
        await runner.cleanup()


def test_a_coupon_whose_header_is_nested_deep_is_malformed() -> None:
    header = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
    with pytest.raises(TokenError) as err:
        verify_coupon(f"SGC1:{header}.e30.AAAA", KeySet(), store_id="S001", now=datetime.now(UTC))
    assert err.value.code == "malformed"
