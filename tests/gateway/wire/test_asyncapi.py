"""docs/asyncapi.yaml describes what the code really sends: every message of a real run validates.

The official AsyncAPI CLI (``asyncapi validate``, installed by ``make tools``) checks the
document itself: spec, MQTT bindings, references, channel parameters; the checks here are the
ones it does not make. Then a real Mosquitto, a real gateway and the cloud simulator (with its
enrolment service): an observer records every message under ``storegw/``, including an
enrolment on the provisioning topics and a ``provision doctor`` session. Each one must fall on
exactly one documented channel and validate against that channel's message schema (RPC replies
against the reply schema of the method they answer, found by correlation data; command results
on a v5 response topic against the address-less response channel). A message on an
undocumented channel fails the test, and so does a documented channel that the run never used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from core.events import Priority, Reading
from drivers.base import BadInput, error_reading
from gateway.certwatch import CertStatus
from gateway.daemon import Gateway
from gateway.metrics import EVENT_KINDS
from gateway.pricing.report import LabelOutcome, Sync
from gateway.rpc import RpcRefused
from gateway.wire.certs import build_csr, csr_pem
from gateway.wire.enrolment import ClaimToken, EnrollRequest, request_topic, response_topic
from gateway.wire.tokens import verify_wallet
from provisioning.doctor.session import check_session
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService, seed
from simulators.cloud.enrollment import Enrollment
from simulators.phone import Phone
from tests.support.config import make_config
from tests.support.gateway import running
from tests.support.mqtt import Observer, response
from tests.support.paths import REPO
from tests.support.waiting import wait_for

DOC_PATH = REPO / "docs" / "asyncapi.yaml"
BASE = "storegw/v1/S001/gw-1"
RESPONSE_CHANNEL = "commandResponse"
ROOT = DOC_PATH.parent.parent
CLI = ROOT / ".tools" / "asyncapi" / "node_modules" / ".bin" / "asyncapi"


# --- the document --------------------------------------------------------------------------


@cache
def document() -> dict[str, Any]:
    doc = yaml.safe_load(DOC_PATH.read_text())
    assert isinstance(doc, dict)
    return doc


def pointer(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(node: Any, doc: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline every local ``$ref`` (the document has no recursive schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref not in seen, f"recursive reference {ref}"
            target = deref(pointer(doc, ref), doc, (*seen, ref))
            rest = {k: deref(v, doc, seen) for k, v in node.items() if k != "$ref"}
            return {**target, **rest} if rest else target
        return {k: deref(v, doc, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [deref(v, doc, seen) for v in node]
    return node


class Channel:
    def __init__(self, name: str, spec: dict[str, Any], doc: dict[str, Any]) -> None:
        self.name = name
        self.address: str | None = spec["address"]
        """None: chosen at run time (a v5 response topic), see :func:`channel_for`."""
        self.params = re.findall(r"{([^}]+)}", self.address or "")
        pattern = re.escape(self.address or "")
        for p in self.params:
            pattern = pattern.replace(re.escape("{" + p + "}"), "[^/]+")
        self.regex = re.compile(f"^{pattern}$") if self.address is not None else None
        self.messages: dict[str, jsonschema.protocols.Validator] = {}
        for msg_name, msg in spec["messages"].items():
            schema = deref(msg, doc)["payload"]
            jsonschema.Draft7Validator.check_schema(schema)
            self.messages[msg_name] = jsonschema.Draft7Validator(schema)


@cache
def channels() -> dict[str, Channel]:
    doc = document()
    return {name: Channel(name, spec, doc) for name, spec in doc["channels"].items()}


def channel_for(topic: str, response_topics: frozenset[str] = frozenset()) -> Channel:
    """The most specific documented channel (fewest parameters) whose address matches; a
    command's response topic (the cloud's choice) is the channel without an address."""
    if topic in response_topics:
        return channels()[RESPONSE_CHANNEL]
    matches = [c for c in channels().values() if c.regex is not None and c.regex.match(topic)]
    assert matches, f"no channel in docs/asyncapi.yaml describes {topic!r}"
    fewest = min(len(c.params) for c in matches)
    best = [c for c in matches if len(c.params) == fewest]
    assert len(best) == 1, f"{topic!r} matches channels {[c.name for c in best]}"
    return best[0]


def errors(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


# --- structure -----------------------------------------------------------------------------


def asyncapi_validate(path: Path) -> list[dict[str, Any]]:
    """Every diagnostic (error to hint) the official validator reports for ``path``."""
    assert CLI.exists(), f"the AsyncAPI CLI is not installed at {CLI}: run `make tools`"
    env = {
        **os.environ,
        "ASYNCAPI_METRICS_CONFIG_PATH": str(CLI.parents[2] / "analytics.json"),
        "SUPPRESS_NO_CONFIG_WARNING": "1",
        "CI": "true",
    }
    run = subprocess.run(
        [
            str(CLI),
            "validate",
            str(path),
            "--fail-severity",
            "hint",
            "--diagnostics-format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    start = re.search(r"(?m)^\[", run.stdout)
    assert start is not None, f"no diagnostics from the CLI (exit {run.returncode}):\n{run.stderr}"
    found: list[dict[str, Any]] = json.loads(run.stdout[start.start() :])
    assert (run.returncode == 0) == (found == []), (run.returncode, found)
    return found


def test_the_official_asyncapi_validator_finds_nothing_to_report(tmp_path: Path) -> None:
    report = [
        (d["code"], d["message"], ".".join(map(str, d["path"])))
        for d in asyncapi_validate(DOC_PATH)
    ]
    assert report == []
    # The same run refuses what the spec refuses (so a silent validator cannot pass this):
    bad = DOC_PATH.read_text().replace(
        "      channel: {$ref: '#/channels/commandResponse'}\n",
        "      channel: {$ref: '#/channels/commandResponse'}\n      description: not allowed\n",
    )
    assert bad != DOC_PATH.read_text()
    (tmp_path / "bad.yaml").write_text(bad)
    paths = [d["path"] for d in asyncapi_validate(tmp_path / "bad.yaml")]
    assert ["operations", "receiveCommand", "reply", "description"] in paths


def test_what_the_validator_leaves_to_us() -> None:
    """Conventions the spec does not require, and reply messages (which the CLI does not
    check against the reply channel's)."""
    doc = document()
    used = set()
    for name, op in doc["operations"].items():
        reply = op.get("reply")
        for ref in (op["channel"], (reply or {}).get("channel")):
            if ref is not None:
                used.add(ref["$ref"].removeprefix("#/channels/"))
        if reply is not None:
            channel = reply["channel"]["$ref"]
            for m in reply.get("messages", []):
                assert m["$ref"].startswith(channel + "/messages/"), f"{name}: {m}"
        binding = op["bindings"]["mqtt"]
        assert binding["qos"] == 1, name
        retained = op["channel"]["$ref"] in (
            "#/channels/status",
            "#/channels/cloudKeys",
            "#/channels/deviceAvailability",
        )
        assert binding.get("retain", False) is (retained and op["action"] == "send"), name
    assert used == set(doc["channels"]), "every channel is used by an operation or a reply"
    assert [c for c, spec in doc["channels"].items() if spec["address"] is None] == [
        RESPONSE_CHANNEL
    ]
    assert len(channels()) == len(doc["channels"])  # every payload schema is a valid schema


def test_the_servers_are_the_listeners_of_the_shipped_broker_config() -> None:
    """8883 (mTLS, the gateway's identity) and 8884 (enrolment) in deploy/mosquitto."""
    conf = (ROOT / "deploy" / "mosquitto" / "storegw.conf").read_text()
    listeners = {int(p) for p in re.findall(r"(?m)^listener (\d+)", conf)}
    servers = document()["servers"]
    assert {int(s["host"].rpartition(":")[2]) for s in servers.values()} == listeners
    assert {s["protocol"] for s in servers.values()} == {"secure-mqtt"}
    schemes = document()["components"]["securitySchemes"]
    assert [
        schemes[r["$ref"].rpartition("/")[2]]["type"] for r in servers["store-broker"]["security"]
    ] == ["X509"]
    assert "security" not in servers["enrolment"]
    for name, spec in document()["channels"].items():
        enrolment = name.startswith("provision")
        assert spec["servers"] == [
            {"$ref": "#/servers/enrolment" if enrolment else "#/servers/store-broker"}
        ], name


def test_every_event_kind_the_metrics_know_has_a_channel_and_no_more() -> None:
    """gateway/metrics.py labels events by these kinds (anything else is ``unknown``)."""
    for kind in EVENT_KINDS:
        assert channel_for(f"{BASE}/events/{kind}").name == f"events.{kind}"
    documented = {n.removeprefix("events.") for n in channels() if n.startswith("events.")}
    assert documented == EVENT_KINDS
    with pytest.raises(AssertionError, match="no channel"):
        channel_for(f"{BASE}/events/not.a.kind")


def test_the_schemas_refuse_what_the_contract_refuses() -> None:
    event = {
        "id": "0190a5b2-7c3d-7e4f-8a1b-123456789abc",
        "seq": 1,
        "ts": "2026-11-23T10:00:00.000000Z",
        "store_id": "S001",
        "gateway_id": "gw-1",
        "device_id": "scanner-1",
        "kind": "scan",
        "data": {"code": "4006381333931"},
    }
    scan = channels()["events.scan"].messages["event.scan"]
    assert errors(scan, event) == []
    assert errors(scan, {**event, "extra": 1})
    assert errors(scan, {**event, "replayed": False})
    assert errors(scan, {**event, "kind": "card"})
    assert errors(scan, {**event, "ts": "2026-11-23T10:00:00+01:00"})
    assert errors(scan, {**event, "id": "not-a-uuid"})
    assert errors(scan, {**event, "data": {}})
    redeem = channels()["rpcReply"].messages["coupon.redeem.reply"]
    conflict = {"ok": False, "error": {"code": "already_used", "message": "x"}}
    assert errors(redeem, conflict), "already_used needs details"


# --- a real run ----------------------------------------------------------------------------


def _events() -> list[tuple[str, Reading]]:
    """One reading of every documented kind, shaped as its producer shapes it."""
    now = datetime.now(UTC)
    redemption = {
        "redemption_id": "red-77",
        "coupon_id": seed.COUPON_WELCOME,
        "value": "5.00",
        "currency": "EUR",
        "till": "till-1",
        "member_id": seed.ALICE,
        "offline": True,
        "mode": "offline",
        "source": "device",
        "title": "5 EUR welcome",
        "offline_at": (now - timedelta(minutes=5)).isoformat(),
    }
    pickup = {
        "pickup_id": "pk-77",
        "order_id": seed.ORDER_ALICE,
        "lines": [{"sku": "4006381333931", "name": "Stabilo pen", "qty": 3}],
        "till": "till-1",
        "member_id": seed.ALICE,
        "offline": False,
        "mode": "online",
        "source": "api",
        "client": "pos",
        "staff": "S-17",
    }
    readings: list[tuple[str, str, dict[str, Any]]] = [
        ("scanner-1", "scan", {"code": "4006381333931", "symbology": "EAN-13", "aim_id": "]E0"}),
        ("scanner-1", "scan", {"code": "010950600013435217251231", "gs1": {"01": "x"}}),
        ("reader-1", "card", {"uid": "04A1B2C3D4E5F6", "atr": "3B8F80", "reader": "Virtual PCD"}),
        ("reader-1", "card.removed", {"reader": "Virtual PCD", "uid": "04A1B2C3D4E5F6"}),
        ("nfc-1", "nfc", {"uid": "04112233445566", "type": "ntag213", "ndef": []}),
        ("nfc-1", "nfc.removed", {"uid": "04112233445566", "type": "ntag213"}),
        ("labels", "esl", {"label": "aisle3-milk", "state": "shown"}),
        ("gateway", "outbox.expired", {"expired": 3, "max_age_s": 86400.0}),
        ("gateway", "outbox.corrupt", {"seq": 8, "reason": "checksum", "kind": "scan"}),
        (
            "gateway",
            "outbox.reset",
            {
                "reason": "damaged",
                "db_last_seq": 0,
                "first": 1,
                "last": 600,
                "certainty": "lost",
                "error": "file is not a database",
                "set_aside": "outbox.db.damaged-20261205T000000Z",
            },
        ),
        ("scanner-1", "device.status", {"state": "available", "kind": "scanner"}),
        (
            "scanner-1",
            "device.status",
            {"state": "unavailable", "kind": "scanner", "reason": "gone", "message": "unplugged"},
        ),
        (
            "scanner-1",
            "member.identified",
            {
                "till": "till-1",
                "by": "card",
                "member_id": seed.ALICE,
                "mode": "online",
                "cached": False,
                "source": "device",
                "uid": seed.CARD_ALICE,
            },
        ),
        ("scanner-1", "coupon.redeemed", redemption),
        (
            "gateway",
            "coupon.redeemed",
            {
                **redemption,
                "redemption_id": "red-78",
                "discount": "1.30",
                "receipt_id": "R-1",
                "store_ledger": "reserved",
            },
        ),
        (
            "scanner-1",
            "redemption.conflict",
            {
                "coupon_id": seed.COUPON_WELCOME,
                "reason": "already_used",
                "message": "used",
                "redemption": redemption,
                "cloud": {"used_at": "2026-11-20T09:30:00Z", "store_id": "S002"},
            },
        ),
        ("gateway", "order.picked_up", pickup),
        (
            "gateway",
            "pickup.conflict",
            {
                "order_id": seed.ORDER_ALICE,
                "reason": "already_collected",
                "message": "collected",
                "pickup": pickup,
                "cloud": {"collected_at": "2026-11-20T09:30:00Z", "store_id": "S002"},
            },
        ),
        (
            "gateway",
            "points.accrued",
            {
                "accrual_id": "acc-9",
                "member_id": seed.ALICE,
                "amount": "12.50",
                "currency": "EUR",
                "items": [{"sku": "4006381333931", "qty": 1, "price": "1.49"}],
                "receipt_id": "r-1",
                "till": "till-1",
                "source": "api",
                "client": "pos",
            },
        ),
        (
            "gateway",
            "appointment.checked_in",
            {
                "checkin_id": "chk-9",
                "appointment_id": seed.APPT_SOON,
                "member_id": seed.ALICE,
                "campaign_id": "CMP-SPRING",
                "till": "till-1",
                "source": "api",
            },
        ),
        (
            "scanner-1",
            "counter.refused",
            {
                "operation": "coupon.redeem",
                "reason": "expired",
                "message": "coupon has expired",
                "till": "till-1",
                "source": "device",
                "mode": "online",
            },
        ),
    ]
    api = {"till": "till-1", "source": "api", "client": "pos", "staff": "S-7"}
    paid = {
        "payment_id": "pay-9",
        "member_id": seed.ALICE,
        "amount": "20.00",
        "currency": "EUR",
        "receipt_id": "r-9",
        "offline_at": "2026-11-20T09:30:00.000Z",
        "credential_id": "wal-1",
        **api,
    }
    readings.append(("gateway", "balance.paid", paid))
    readings.append(
        (
            "gateway",
            "balance.refunded",
            {"refund_id": "rf-9", "payment_id": "pay-9", "amount": "5.00", **api},
        )
    )
    topped = {"topup_id": "t-9", "member_id": seed.ALICE, "amount": "50.00", "currency": "EUR"}
    readings.append(
        ("gateway", "balance.topped_up", {**topped, "method": "cash", "receipt_id": "r-10", **api})
    )
    readings.append(
        ("gateway", "balance.conflict", {**paid, "shortfall": "7.00", "balance": "-7.00"})
    )
    spent = {"redeem_id": "pr-9", "member_id": seed.ALICE, "points": 400, "receipt_id": "r-9"}
    readings.append(
        ("gateway", "points.redeemed", {**spent, "offline_at": paid["offline_at"], **api})
    )
    readings.append(
        (
            "gateway",
            "points.reversed",
            {"reversal_id": "rv-9", "accrual_id": "acc-9", "amount": "5.00", **api},
        )
    )
    readings.append(
        ("gateway", "points.conflict", {**spent, "points": -190, "shortfall": 190, **api})
    )
    used = {"use_id": "u-9", "member_id": seed.BRUNO, "package_id": "PKG-PT-8", "sessions": 1}
    readings.append(("gateway", "package.used", {**used, "offline_at": paid["offline_at"], **api}))
    readings.append(("gateway", "package.conflict", {**used, "shortfall": 1, "left": -1, **api}))
    state = {
        "conflict_id": "payment:pay-9",
        "kind": "payment",
        "state": "acknowledged",
        "was": "open",
        "by": "S-7",
        "note": None,
        "reason": "shortfall",
        "till": "till-1",
        "member_id": seed.ALICE,
        "detected_at": "2026-11-20T09:30:00.000Z",
    }
    readings.append(("gateway", "conflict.acknowledged", state))
    resolved = {**state, "state": "resolved", "was": "acknowledged", "note": "paid in cash"}
    readings.append(("gateway", "conflict.resolved", resolved))
    visit = {"member_id": seed.ALICE, "day": "2026-11-20", "till": "till-1", "by": "card"}
    readings.append(("gateway", "member.visit", {**visit, "mode": "online", **api}))
    joined = {
        "join_id": "j-9",
        "phone_hash": "0" * 64,
        "consent": True,
        "marketing": False,
        "till": "till-1",
        "channel": "till",
        "provisional_id": "P-0123456789abcdef",
        "offline_at": "2026-11-20T09:30:00.000Z",
    }
    readings.append(("gateway", "member.joined", {**joined, **api}))
    readings.append(("gateway", "price.sync", _price_sync()))
    cert = CertStatus("S001/gw-1", 0x1F2E, now + timedelta(days=9), 9 * 86400.0).as_json()
    readings.append(("gateway", "cert.expiring", cert))
    readings.append(("gateway", "cert.renewed", {**cert, "serial": "3a4b", "days_left": 365.0}))
    out = [(dev, Reading(kind=kind, data=data)) for dev, kind, data in readings]
    err = error_reading(BadInput("scanner-1", "invalid_utf8", "bad bytes"), preview_hex="fffe")
    out.append(("scanner-1", err))
    out.append(("scanner-1", Reading(kind="scan", data={"code": "x"}, priority=Priority.LOW)))
    return out


def _price_sync() -> dict[str, Any]:
    """A report built by the pricing service's own bookkeeping (as service.py publishes it)."""
    sync = Sync(
        sync_id="0123456789abcdef0123456789abcdef", reason="flash_sale.start", sale_id="s-1"
    )
    for label, push_id in (("a1", "p1"), ("a2", "p2"), ("a3", "p3"), ("a4", None)):
        sync.add(LabelOutcome(device="labels", label=label, sku="4006381333931", push_id=push_id))
    sync.unchanged = 2
    sync.update(("labels", "a1"), "updated", None, 1)
    sync.update(("labels", "a2"), "retrying", {"reason": "timeout", "message": "no ack"}, 2)
    sync.update(("labels", "a3"), "superseded", None, None)
    sync.seal()
    return {**sync.report(), "revision": 1}


async def _rpcs(gw: Gateway, cloud: CloudService) -> None:
    """Every method, answered and refused."""

    async def call(method: str, args: dict[str, Any], refusal: str | None = None) -> None:
        if refusal is None:
            await gw.bridge.rpc.call(method, args, timeout=5)
            return
        with pytest.raises(RpcRefused) as err:
            await gw.bridge.rpc.call(method, args, timeout=5)
        assert err.value.code == refusal

    phone = await Phone.enroll(cloud, seed.BRUNO)
    assert phone.code().startswith("SGM1:")
    await call("member.identify", {"by": "qr", "member_id": seed.BRUNO})
    await call("member.identify", {"by": "member_id", "member_id": seed.ALICE})
    await call("member.identify", {"by": "card", "uid": seed.CARD_ALICE})
    await call("member.identify", {"by": "nfc", "uid": "00ff00ff"}, "unknown_card")
    await call("member.identify", {"by": "member_id", "member_id": "M0"}, "unknown_member")
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    args = {"coupon": welcome, "redemption_id": "a-1", "till": "till-1", "member_id": seed.ALICE}
    await call("coupon.redeem", args)
    await call("coupon.redeem", args)
    await call("coupon.redeem", {**args, "redemption_id": "a-2"}, "already_used")
    expired = await cloud.coupon_token(seed.COUPON_EXPIRED)
    await call("coupon.redeem", {"coupon": expired, "redemption_id": "a-3"}, "expired")
    bearer = await cloud.coupon_token(seed.COUPON_BEARER)
    offline_at = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    await call(
        "coupon.redeem",
        {"coupon": bearer, "redemption_id": "a-4", "till": None, "offline_at": offline_at},
    )
    order = await cloud.order_token(seed.ORDER_ALICE)
    pickup = {"code": order, "pickup_id": "o-1", "till": "till-1", "member_id": seed.ALICE}
    await call("order.pickup", pickup)
    await call("order.pickup", {**pickup, "pickup_id": "o-2"}, "already_collected")
    expired_order = await cloud.order_token(seed.ORDER_EXPIRED)
    await call("order.pickup", {"code": expired_order, "pickup_id": "o-3"}, "expired")
    coffee = await cloud.coupon_token(seed.COUPON_COFFEE)
    cart = {
        "receipt_id": "r-b1",
        "lines": [
            {"sku": "4000000000002", "category": "coffee", "qty": 4, "price": "6.49"},
            {"sku": "x", "category": None, "qty": 1, "price": "0.5"},
        ],
    }
    small = {**cart, "lines": cart["lines"][1:]}
    await call(
        "coupon.redeem",
        {"coupon": coffee, "redemption_id": "a-6", "basket": small},
        "min_spend_not_met",
    )
    await call("coupon.redeem", {"coupon": coffee, "redemption_id": "a-7"}, "not_applicable")
    await call("coupon.redeem", {"coupon": coffee, "redemption_id": "a-5", "basket": cart})
    accrual = {
        "accrual_id": "p-1",
        "member_id": seed.ALICE,
        "amount": "9.99",
        "currency": "EUR",
        "items": [{"sku": "4000000000001", "qty": 3, "price": "1.19"}],
        "receipt_id": None,
    }
    await call("points.accrue", accrual)
    await call(
        "points.accrue", {**accrual, "accrual_id": "p-2", "member_id": "M0"}, "unknown_member"
    )
    await call(
        "appointment.checkin",
        {"checkin_id": "c-1", "appointment_id": seed.APPT_SOON, "campaign_id": "CMP-SPRING"},
    )
    await call(
        "appointment.checkin",
        {"checkin_id": "c-2", "appointment_id": seed.APPT_LATER, "member_id": seed.BRUNO},
        "too_early",
    )
    claim = {"claim_id": "k-1", "member_id": seed.ALICE, "offer_id": seed.OFFER_COFFEE}
    await call("coupon.claim", {**claim, "till": "kiosk-1"})
    await call("coupon.claim", {**claim, "claim_id": "k-2"}, "already_claimed")
    await call("coupon.claim", {**claim, "claim_id": "k-3", "offer_id": "NONE"}, "unknown_offer")
    pay = {
        "payment_id": "b-1",
        "member_id": seed.ALICE,
        "amount": "20.00",
        "currency": "EUR",
        "receipt_id": "r-b1",
        "till": "till-1",
    }
    await call("balance.pay", pay)
    await call("balance.pay", {**pay, "payment_id": "b-2"}, "insufficient_funds")
    await call("balance.pay", {**pay, "payment_id": "b-3", "currency": "CNY"}, "wrong_currency")
    wallet = (
        await gw.bridge.rpc.call(
            "member.identify", {"by": "member_id", "member_id": seed.ALICE}, timeout=5
        )
    )["member"]["wallet"]
    credential = verify_wallet(wallet, cloud.keys, member_id=seed.ALICE, now=datetime.now(UTC))
    await call(
        "balance.pay",
        {
            **pay,
            "payment_id": "b-4",
            "offline_at": offline_at,
            "credential_id": credential.credential_id,
        },
    )  # more than is left: applied, with its shortfall
    refund = {"refund_id": "f-1", "payment_id": "b-1", "amount": "5.00"}
    await call("balance.refund", refund)
    await call("balance.refund", {**refund, "refund_id": "f-2", "amount": "15.01"}, "over_refund")
    topup = {
        "topup_id": "u-1",
        "member_id": seed.ALICE,
        "amount": "30.00",
        "currency": "EUR",
        "method": "card",
        "receipt_id": "r-u1",
    }
    await call("balance.topup", topup)
    await call("balance.topup", {**topup, "topup_id": "u-2", "member_id": "M0"}, "unknown_member")
    spend = {"redeem_id": "q-1", "member_id": seed.ALICE, "points": 100, "receipt_id": "r-q1"}
    await call("points.redeem", spend)
    await call(
        "points.redeem", {**spend, "redeem_id": "q-2", "points": 10**8}, "insufficient_points"
    )
    await call(
        "points.redeem",
        {
            **spend,
            "redeem_id": "q-3",
            "points": 5000,
            "offline_at": offline_at,
            "credential_id": credential.credential_id,
        },
    )  # more than she holds: applied, with its shortfall
    back = {"reversal_id": "v-1", "accrual_id": "p-1", "amount": "3.00"}
    await call("points.reverse", back)
    await call("points.reverse", {**back, "reversal_id": "v-2", "amount": "7.00"}, "over_refund")
    pkg = {
        "use_id": "w-1",
        "member_id": seed.BRUNO,
        "package_id": seed.PACKAGE_TRAINING,
        "sessions": 1,
    }
    await call("package.consume", pkg)
    await call("package.consume", {**pkg, "use_id": "w-2", "sessions": 99}, "used_up")
    await call("package.consume", {**pkg, "use_id": "w-3", "member_id": seed.ALICE}, "not_found")
    await call("appointment.checkin", {"checkin_id": "c-3", "appointment_id": seed.APPT_PACKAGE})
    join = {"join_id": "j-1", "phone": "+491701234567", "consent": True, "channel": "till"}
    await call("member.join", join)
    await call("member.join", {**join, "phone": "+491700000000"}, "bad_args")  # reused id
    await call("clock.now", {})


async def _enrolment(observer: Observer, gw: Gateway, enrollment: Enrollment) -> None:
    """Enrol S001/gw-1 on the provisioning topics (refused, then signed), then cert.renew."""
    token = ClaimToken.parse(enrollment.issue_claim("S001", "gw-1"))
    key = ec.generate_private_key(ec.SECP256R1())
    csr, other = (csr_pem(build_csr(key, "S001", gw_id)) for gw_id in ("gw-1", "gw-2"))
    fields: dict[str, Any] = {
        "claim_id": token.claim_id,
        "store_id": "S001",
        "gateway_id": "gw-1",
        "csr": csr,
    }
    request = EnrollRequest(**fields, secret=token.secret, nonce="nonce-0123456789ab")
    wrong = EnrollRequest(**fields, secret="x" * 43, nonce="nonce-wrong-secret")

    def answered(nonce: str) -> Callable[[], bool]:
        topic = response_topic(token.claim_id)
        return lambda: any(json.loads(p)["nonce"] == nonce for p, _ in observer.on(topic))

    for attempt in (wrong, request):
        await observer.publish(request_topic(token.claim_id), attempt.model_dump_json().encode())
        await wait_for(answered(attempt.nonce), message=f"enrolment answer to {attempt.nonce}")
    locked = ClaimToken.parse(enrollment.issue_claim("S001", "gw-1"))
    for _ in range(enrollment.limiter.limits.free_failures + 1):
        enrollment.limiter.failed(locked.claim_id)  # as wrong secrets would
    limited = EnrollRequest(**{**fields, "claim_id": locked.claim_id}, secret=locked.secret,
                            nonce="nonce-rate-limited")  # fmt: skip
    await observer.publish(request_topic(locked.claim_id), limited.model_dump_json().encode())
    topic = response_topic(locked.claim_id)
    await wait_for(
        lambda: any(json.loads(p)["nonce"] == limited.nonce for p, _ in observer.on(topic)),
        message="the rate_limited answer",
    )
    await gw.bridge.rpc.call("cert.renew", {"csr": csr}, timeout=5)
    with pytest.raises(RpcRefused) as err:
        await gw.bridge.rpc.call("cert.renew", {"csr": other}, timeout=5)
    assert err.value.code == "identity_mismatch"


def _seen(observer: Observer, suffix: str) -> Callable[[], bool]:
    return lambda: bool(observer.on(suffix))


async def _commands(observer: Observer, cloud: CloudService) -> None:
    for name, body in (
        ("ping", b'{"id": "p1", "args": {"echo": "hi"}}'),
        ("status", b"{}"),
        ("config.get", b'{"id": "c1"}'),
        ("config.set", b'{"id": "s1", "args": {"changes": {"log.level": "INFO"}}}'),
        ("no.such.command", b"{}"),
    ):
        await observer.publish(f"{BASE}/cmd/{name}", body)
    for name in ("ping", "status", "config.get", "config.set", "no.such.command"):
        await wait_for(_seen(observer, f"/cmd-result/{name}"), message=f"{name} result")
    assert (await cloud.send_command("S001", "gw-1", "ping", {"echo": "x"}))["ok"] is True
    assert (await cloud.send_command("S001", "gw-1", "status"))["ok"] is True
    props = response("storegw/v1/cloud/cmd-reply/S001/gw-1/test", b"c-9")
    await observer.publish(f"{BASE}/cmd/ping", b'{"args": {"bogus": 1}}', properties=props)
    await wait_for(
        lambda: observer.on("/cmd-reply/S001/gw-1/test"), message="reply to the response topic"
    )


async def test_every_message_of_a_real_run_matches_the_document(
    broker: MosquittoBroker, observer: Observer, tmp_path: Path
) -> None:
    enrollment = Enrollment(tmp_path / "pki", url=broker.url)
    async with CloudService(broker.url, tmp_path / "cloud.db") as cloud, enrollment:
        enrollment.attach(cloud)
        unplugged = {"id": "scanner-1", "kind": "scanner", "port": str(tmp_path / "no-tty")}
        config = make_config(
            broker.url, tmp_path / "gw", devices=[unplugged], delivery={"confirm": "cloud"}
        )
        gw = Gateway(config)
        async with running(gw, connected=True):
            readings = _events()
            for device_id, reading in readings:
                await gw.submit(device_id, reading)
            await _rpcs(gw, cloud)
            await _commands(observer, cloud)
            await _enrolment(observer, gw, enrollment)
            acl, clock = await check_session(config, timeout=5)
            assert (acl.status, clock.name) == ("ok", "clock skew"), (acl, clock)
            assert "box is" in clock.finding, clock  # the cloud answered the doctor's clock.now
            await wait_for(
                lambda: len(observer.events()) >= len(readings), message="all events published"
            )
        await wait_for(
            lambda: any(json.loads(p)["state"] == "offline" for p, _ in observer.on("gw-1/status")),
            message="goodbye",
        )

    requests: dict[bytes, str] = {}
    response_topics: set[str] = set()
    for topic, _, props in observer.messages:
        if "/rpc/" in topic:
            requests[props.CorrelationData] = topic.rsplit("/", 1)[1]
        if "/cmd/" in topic and hasattr(props, "ResponseTopic"):
            response_topics.add(props.ResponseTopic)
    seen: dict[str, int] = {}
    problems: list[str] = []
    for topic, payload, props in observer.messages:
        channel = channel_for(topic, frozenset(response_topics))
        seen[channel.name] = seen.get(channel.name, 0) + 1
        if channel.name == "deviceAvailability" and payload == b"":
            continue  # a removed device's topic cleared, as the channel describes
        try:
            doc = json.loads(payload)
        except ValueError:
            problems.append(f"{topic}: not JSON: {payload[:80]!r}")
            continue
        if channel.name == "rpcReply":
            method = requests.get(props.CorrelationData)
            assert method is not None, f"a reply without a request: {doc}"
            validators = [channel.messages[f"{method}.reply"]]
        else:
            validators = list(channel.messages.values())
        found = [errors(v, doc) for v in validators]
        if all(found):
            problems.append(f"{topic}: {json.dumps(doc)[:300]}\n    " + "\n    ".join(found[0]))
    assert problems == [], "\n".join(problems)
    assert set(seen) == set(channels()), f"channels never exercised: {set(channels()) - set(seen)}"
