"""The local HTTP API: every endpoint, tokens, bad input, TLS and the OpenAPI document."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from typer.testing import CliRunner

from gateway.api.auth import TokenStore
from gateway.daemon import Gateway
from gateway.wire.tokens import Coupon, sign_coupon
from simulators.cloud import CloudService, seed
from simulators.phone import Phone
from simulators.pki import make_tls_files
from storegw.cli import app as cli_app
from tests.support.config import counter_config, write_config
from tests.support.counter import cloud_events, forged_coupon, offline, online
from tests.support.gateway import running
from tests.support.http import DEFAULT_TOKEN, TokenClient
from tests.support.link import Link
from tests.support.waiting import wait_for


@dataclass
class Api(TokenClient):
    gw: Gateway
    base: str
    token: str
    tokens: TokenStore
    http: aiohttp.ClientSession
    spec: dict[str, Any] | None = None

    def named_tokens(self) -> dict[str, str]:
        return {DEFAULT_TOKEN: self.token}

    async def ok(self, method: str, path: str, body: Any = None, schema: str = "") -> Any:
        status, doc = await self.call(method, path, body)
        assert status == 200, doc
        if schema:
            self.conforms(doc, schema)
        return doc

    async def refused(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, str]:
        status, doc = await self.call(method, path, body, **kw)
        assert set(doc) <= {"error", "mode"}, doc
        self.conforms(doc, "Error")
        return status, doc["error"]["code"]

    def conforms(self, doc: Any, schema: str) -> None:
        """Validate an answer against the schema the OpenAPI document gives for it."""
        if self.spec is None:
            return
        root = {**self.spec, "$ref": f"#/components/schemas/{schema}"}
        jsonschema.Draft202012Validator(root).validate(doc)


@contextlib.asynccontextmanager
async def api_running(link: Link, data_dir: Path, **config: Any) -> AsyncIterator[Api]:
    tokens = TokenStore(data_dir / "api-tokens.db")
    token = tokens.create("pos-1")
    gw = Gateway(counter_config(link.url, data_dir, api=True, **config))
    async with running(gw), aiohttp.ClientSession() as http:
        assert gw.api is not None
        assert gw.api.port is not None
        api = Api(gw, f"http://127.0.0.1:{gw.api.port}", token, tokens, http)
        await online(gw)
        yield api


# --- the document -----------------------------------------------------------------------------


async def test_openapi_is_valid_served_without_a_token_and_documents_every_route(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with api_running(link, tmp_path / "gw") as api:
        status, spec = await api.call("GET", "/v1/openapi.json", token=None)
        assert api.gw.api is not None
        routes = {
            (r.method, r.resource.canonical)
            for r in api.gw.api.app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }
    assert status == 200
    validate_spec(spec)
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == documented
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["responses"]["200"], f"{method} {path}"
            if op.get("security") != []:
                assert "401" in op["responses"], f"{method} {path} documents 401"


# --- every endpoint, online -------------------------------------------------------------------


async def test_every_endpoint_online_answers_per_the_document(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    phone = await Phone.enroll(cloud, seed.ALICE)
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    async with api_running(link, tmp_path / "gw") as api:
        _, api.spec = await api.call("GET", "/v1/openapi.json", token=None)
        ident = await api.ok(
            "POST",
            "/v1/identify",
            {"till": "till-1", "by": "qr", "code": phone.code()},
            "IdentifyAnswer",
        )
        assert ident["mode"] == "online"
        assert ident["member"]["member_id"] == seed.ALICE
        by_card = await api.ok(
            "POST", "/v1/identify", {"till": "till-2", "by": "card", "uid": seed.CARD_CHLOE}
        )
        assert by_card["member"]["member_id"] == seed.CHLOE
        member = await api.ok("GET", f"/v1/members/{seed.BRUNO}", schema="MemberAnswer")
        assert member["member"]["name"] == "Bruno Keller"
        assert member["cached"] is False
        redeemed = await api.ok(
            "POST", "/v1/coupons/redeem", {"till": "till-1", "coupon": welcome}, "RedeemAnswer"
        )
        assert redeemed["status"] == "accepted"
        assert redeemed["member_id"] == seed.ALICE  # the till's identified member
        assert redeemed["value"] == "5.00"
        accrued = await api.ok(
            "POST",
            "/v1/points/accrue",
            {
                "till": "till-1",
                "amount": "12.50",
                "currency": "EUR",
                "items": [{"sku": "4000000000002", "qty": 2, "price": "6.25"}],
                "receipt_id": "R-100",
            },
            "AccrueAnswer",
        )
        assert accrued["status"] == "confirmed"
        assert accrued["points_added"] == 25
        checkin = await api.ok(
            "POST",
            "/v1/appointments/checkin",
            {"till": "till-1", "appointment_id": seed.APPT_SOON},
            "CheckinAnswer",
        )
        assert checkin["status"] == "confirmed"
        assert checkin["appointment"]["status"] == "checked_in"
        paid = await api.ok(
            "POST",
            "/v1/balance/pay",
            {
                "till": "till-1",
                "payment_id": "P-100",
                "amount": "5.00",
                "currency": "EUR",
                "receipt_id": "R-100",
            },
            "BalanceAnswer",
        )
        assert (paid["status"], paid["balance"], paid["member_id"]) == (
            "confirmed",
            "20.00",
            seed.ALICE,
        )
        refunded = await api.ok(
            "POST",
            "/v1/balance/refund",
            {"till": "till-1", "refund_id": "RF-100", "payment_id": "P-100", "amount": "2.00"},
            "BalanceAnswer",
        )
        assert refunded["balance"] == "22.00"
        topped = await api.ok(
            "POST",
            "/v1/balance/topup",
            {
                "till": "till-1",
                "topup_id": "T-100",
                "amount": "10",
                "currency": "EUR",
                "method": "cash",
                "receipt_id": "R-101",
            },
            "BalanceAnswer",
        )
        assert topped["balance"] == "32.00"
        joined = await api.ok(
            "POST",
            "/v1/joins",
            {"till": "till-2", "join_id": "J-100", "phone": "+4915112345678", "consent": True},
            "JoinAnswer",
        )
        assert (joined["status"], joined["provisional"], joined["existing"]) == (
            "confirmed",
            False,
            False,
        )
        no_consent = {"till": "till-2", "join_id": "J-101", "phone": "+4915112345679"}
        assert await api.refused("POST", "/v1/joins", {**no_consent, "consent": False}) == (
            400,
            "bad_request",
        )
        conflicts = await api.ok("GET", "/v1/conflicts", schema="ConflictsAnswer")
        assert conflicts == {
            "conflicts": [],
            "pickup_conflicts": [],
            "balance_conflicts": [],
            "points_conflicts": [],
            "package_conflicts": [],
            "items": [],
        }
        # a retry with the client's own idempotency key gets the same answer
        body = {"till": "till-1", "coupon": await cloud.coupon_token(seed.COUPON_BEARER)}
        body["redemption_id"] = "POS1-R-77"
        first = await api.ok("POST", "/v1/coupons/redeem", body)
        again = await api.ok("POST", "/v1/coupons/redeem", body)
        assert again == first


# --- tokens -----------------------------------------------------------------------------------


async def test_missing_wrong_and_revoked_tokens_are_refused(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with api_running(link, tmp_path / "gw") as api:
        path = "/v1/conflicts"
        assert await api.refused("GET", path, token=None) == (401, "unauthorized")
        assert await api.refused("GET", path, token="sgw_not-a-real-token") == (
            401,
            "unauthorized",
        )
        assert await api.refused(
            "GET", path, token=None, headers={"Authorization": f"Basic {api.token}"}
        ) == (401, "unauthorized")
        assert await api.refused("GET", "/v1/no-such-route", token=None) == (401, "unauthorized")
        status, _ = await api.call("GET", path)
        assert status == 200
        second = api.tokens.create("kiosk-2")
        status, _ = await api.call("GET", path, token=second)
        assert status == 200
        api.tokens.revoke("pos-1")  # what `storegw api token revoke` does, daemon running
        assert await api.refused("GET", path) == (401, "unauthorized")
        status, _ = await api.call("GET", path, token=second)
        assert status == 200
        async with api.http.get(api.base + path) as resp:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


# --- bad input --------------------------------------------------------------------------------


async def test_bad_input_gets_a_clear_4xx_with_a_stable_code(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    unknown = sign_coupon(
        Coupon(
            coupon_id="CPN-NEVER-ISSUED",
            value=Decimal("1.00"),
            currency="EUR",
            expires=now + timedelta(days=1),
            stores=("*",),
        ),
        cloud.store.signing_key,
    )
    expired = await cloud.coupon_token(seed.COUPON_EXPIRED)
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    big = await cloud.coupon_token(seed.COUPON_BIG)
    redeem = "/v1/coupons/redeem"
    accrual = {"till": "t1", "member_id": "M1", "currency": "EUR", "receipt_id": "R"}
    cases: list[tuple[str, str, Any, dict[str, Any], tuple[int, str]]] = [
        ("malformed JSON", redeem, None, {"raw": b'{"till": "t1", '}, (400, "bad_json")),
        ("not UTF-8", redeem, None, {"raw": b"\xff\xfe{}"}, (400, "bad_json")),
        ("NaN", "/v1/points/accrue", None, {"raw": b'{"amount": NaN}'}, (400, "bad_json")),
        ("a JSON array", redeem, [1, 2], {}, (400, "bad_request")),
        ("missing coupon", redeem, {"till": "t1"}, {}, (400, "bad_request")),
        (
            "unknown field",
            redeem,
            {"till": "t1", "coupon": welcome, "x": 1},
            {},
            (400, "bad_request"),
        ),
        ("bad till id", redeem, {"till": "till 1/..", "coupon": welcome}, {}, (400, "bad_request")),
        (
            "by=card with a code",
            "/v1/identify",
            {"till": "t1", "by": "card", "code": "x"},
            {},
            (400, "bad_request"),
        ),
        (
            "negative amount",
            "/v1/points/accrue",
            {"till": "t1", "member_id": "M1", "amount": "-1", "currency": "EUR", "receipt_id": "R"},
            {},
            (400, "bad_request"),
        ),
        (
            "oversize body",
            redeem,
            None,
            {"raw": b'{"x": "' + b"a" * 70_000 + b'"}'},
            (413, "too_large"),
        ),
        # The document's schemas are what is validated: what they refuse is a 400
        (
            "not a coupon",
            redeem,
            {"till": "t1", "coupon": "4006381333931"},
            {},
            (400, "bad_request"),
        ),
        ("coupon 0", redeem, {"till": "0", "coupon": "0"}, {}, (400, "bad_request")),
        ("by=qr without code", "/v1/identify", {"till": "0", "by": "qr"}, {}, (400, "bad_request")),
        ("empty amount", "/v1/points/accrue", {**accrual, "amount": ""}, {}, (400, "bad_request")),
        (
            "amount as a JSON number",
            "/v1/points/accrue",
            {**accrual, "amount": 12.5},
            {},
            (400, "bad_request"),
        ),
        ("amount 1e3", "/v1/points/accrue", {**accrual, "amount": "1e3"}, {}, (400, "bad_request")),
        (
            "price as a JSON number",
            "/v1/points/accrue",
            {**accrual, "items": [{"sku": "A", "qty": 1, "price": 1.19}]},
            {},
            (400, "bad_request"),
        ),
        # Well-formed but refused by the counter: a 422 with the reason
        (
            "unsigned coupon",
            redeem,
            {"till": "t1", "coupon": "SGC1:x"},
            {},
            (422, "invalid_coupon"),
        ),
        (
            "forged coupon",
            redeem,
            {"till": "t1", "coupon": forged_coupon()},
            {},
            (422, "invalid_coupon"),
        ),
        ("expired coupon", redeem, {"till": "t1", "coupon": expired}, {}, (422, "expired")),
        ("unknown coupon", redeem, {"till": "t1", "coupon": unknown}, {}, (404, "unknown_coupon")),
        (
            "unknown member",
            "/v1/identify",
            {"till": "t1", "by": "member_id", "member_id": "M-0"},
            {},
            (404, "unknown_member"),
        ),
        ("unknown route", "/v1/nothing", None, {}, (404, "not_found")),
        (
            "unknown appointment",
            "/v1/appointments/checkin",
            {"till": "t1", "appointment_id": "APT-NONE", "member_id": seed.ALICE},
            {},
            (404, "not_found"),
        ),
    ]
    async with api_running(link, tmp_path / "gw", offline_max_value="10.00") as api:
        for name, path, body, kw, expected in cases:
            got = await api.refused("POST", path, body, **kw)
            assert got == expected, name
        assert await api.refused("GET", "/v1/members/M1001!") == (400, "bad_request")
        assert await api.refused("GET", "/v1/members/M-NOBODY") == (404, "not_found")
        assert await api.refused("DELETE", "/v1/conflicts") == (405, "method_not_allowed")
        async with api.http.delete(api.base + "/v1/conflicts") as resp:  # RFC 9110 15.5.6
            assert (resp.status, resp.headers.get("Allow")) == (405, "GET")
        await api.ok("POST", redeem, {"till": "t1", "coupon": welcome})
        status, doc = await api.call("POST", redeem, {"till": "t2", "coupon": welcome})
        assert (status, doc["error"]["code"]) == (409, "already_used")
        assert doc["error"]["details"]["till"] == "t1"

        # a chunked upload has no Content-Length: the limit still holds while reading
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 4096

        async with api.http.post(
            api.base + redeem,
            data=chunks(),
            headers={"Authorization": f"Bearer {api.token}"},
        ) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "too_large"

        await offline(api.gw, link)
        status, doc = await api.call("POST", redeem, {"till": "t1", "coupon": big})
        assert (status, doc["error"]["code"], doc["mode"]) == (422, "over_offline_limit", "offline")
        status, doc = await api.call(
            "POST", "/v1/identify", {"till": "t1", "by": "nfc", "uid": "04deadbeef"}
        )
        assert (status, doc["error"]["code"], doc["mode"]) == (503, "unknown_offline", "offline")
        assert await api.refused("GET", f"/v1/members/{seed.DEV}") == (503, "unknown_offline")


# --- offline, conflicts -----------------------------------------------------------------------


async def test_offline_answers_and_conflicts_through_the_api(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    spring = await cloud.coupon_token(seed.COUPON_BEARER)
    async with api_running(link, tmp_path / "gw") as api:
        await api.ok("GET", f"/v1/members/{seed.CHLOE}")  # cached for later
        await offline(api.gw, link)
        member = await api.ok("GET", f"/v1/members/{seed.CHLOE}")
        assert (member["mode"], member["cached"]) == ("offline", True)
        redeemed = await api.ok("POST", "/v1/coupons/redeem", {"till": "t1", "coupon": spring})
        assert (redeemed["mode"], redeemed["status"]) == ("offline", "pending")
        accrued = await api.ok(
            "POST",
            "/v1/points/accrue",
            {
                "till": "t1",
                "member_id": seed.CHLOE,
                "amount": "3",
                "currency": "EUR",
                "receipt_id": "R9",
            },
        )
        assert (accrued["mode"], accrued["status"]) == ("offline", "pending")
        checkin = await api.ok(
            "POST", "/v1/appointments/checkin", {"till": "t1", "appointment_id": seed.APPT_SOON}
        )
        assert (checkin["mode"], checkin["status"]) == ("offline", "pending")
        await cloud.mark_coupon_used(seed.COUPON_BEARER, store_id="S002")
        await link.restore()
        await online(api.gw)

        async def conflicts() -> list[Any]:
            doc = await api.ok("GET", "/v1/conflicts")
            return list(doc["conflicts"])

        await wait_for(lambda: api.gw.counter and api.gw.counter.reconciler.conflicts, timeout=10)
        found = await conflicts()
    assert len(found) == 1
    assert found[0]["coupon_id"] == seed.COUPON_BEARER
    assert found[0]["reason"] == "already_used"
    assert found[0]["cloud"]["store_id"] == "S002"
    assert found[0]["redemption_id"] == redeemed["redemption_id"]


# --- TLS --------------------------------------------------------------------------------------


async def test_the_api_serves_tls_when_configured(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    files = make_tls_files(tmp_path)
    data = tmp_path / "gw"
    token = TokenStore(data / "api-tokens.db").create("pos-tls")
    cfg = counter_config(link.url, data, api=True)
    cfg = cfg.model_copy(
        update={
            "api": cfg.api.model_copy(
                update={"tls_cert": files.server_cert, "tls_key": files.server_key}
            )
        }
    )
    gw = Gateway(cfg)
    ctx = ssl.create_default_context(cafile=str(files.ca))
    async with running(gw), aiohttp.ClientSession() as http:
        assert gw.api is not None
        port = gw.api.port
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(
            f"https://localhost:{port}/v1/conflicts", ssl=ctx, headers=headers
        ) as r:
            assert r.status == 200
            assert await r.json() == {
                "conflicts": [],
                "pickup_conflicts": [],
                "balance_conflicts": [],
                "points_conflicts": [],
                "package_conflicts": [],
                "items": [],
            }

        async def plain_http() -> int:
            async with http.get(f"http://127.0.0.1:{port}/v1/conflicts", headers=headers) as r:
                await r.read()
                return r.status

        with pytest.raises(aiohttp.ClientError):
            await plain_http()
    assert cfg.redacted()["api"]["tls_key"] == "(set)"


# --- the CLI ----------------------------------------------------------------------------------


def test_token_commands_create_list_revoke_and_never_show_secrets(tmp_path: Path) -> None:
    conf = write_config(tmp_path)
    runner = CliRunner()
    created = runner.invoke(cli_app, ["api", "token", "create", "pos-1", "-c", str(conf)])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("sgw_")
    assert len(token) > 40
    store = TokenStore(tmp_path / "data" / "api-tokens.db")
    assert store.lookup(token) == "pos-1"
    duplicate = runner.invoke(cli_app, ["api", "token", "create", "pos-1", "-c", str(conf)])
    assert duplicate.exit_code == 1
    assert token not in duplicate.output
    listed = runner.invoke(cli_app, ["api", "token", "list", "-c", str(conf)])
    assert listed.exit_code == 0
    assert listed.stdout.startswith("pos-1\t")
    assert token not in listed.output
    from gateway.api.auth import token_hash

    assert token_hash(token) not in listed.output
    raw = (tmp_path / "data" / "api-tokens.db").read_bytes()
    assert token.encode() not in raw
    assert (tmp_path / "data" / "api-tokens.db").stat().st_mode & 0o077 == 0
    revoked = runner.invoke(cli_app, ["api", "token", "revoke", "pos-1", "-c", str(conf)])
    assert revoked.exit_code == 0
    assert store.lookup(token) is None
    again = runner.invoke(cli_app, ["api", "token", "revoke", "pos-1", "-c", str(conf)])
    assert again.exit_code == 1
    bad = runner.invoke(cli_app, ["api", "token", "create", "no spaces", "-c", str(conf)])
    assert bad.exit_code == 1
    bound = runner.invoke(
        cli_app, ["api", "token", "create", "pos-2", "--till", "till-1", "-c", str(conf)]
    )
    assert bound.exit_code == 0, bound.output
    client = store.lookup_client(bound.stdout.strip())
    assert client is not None
    assert (client.role, client.till) == ("pos", "till-1")
    assert "till=till-1" in runner.invoke(cli_app, ["api", "token", "list", "-c", str(conf)]).stdout
    nowhere = runner.invoke(
        cli_app, ["api", "token", "create", "pos-3", "--till", "till-99", "-c", str(conf)]
    )
    assert nowhere.exit_code == 1  # not a configured till
    office = runner.invoke(
        cli_app, ["api", "token", "create", "o-1", "--admin", "--till", "till-1", "-c", str(conf)]
    )
    assert office.exit_code == 1  # only a pos token is bound to a till


async def test_the_staff_member_named_at_the_till_is_in_every_event(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    """导购 attribution: each counter operation may name who served, online and offline."""
    welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
    staff = {"staff": "staff-anna"}
    async with api_running(link, tmp_path / "gw") as api:
        await api.ok(
            "POST",
            "/v1/identify",
            {"till": "till-1", "by": "member_id", "member_id": seed.ALICE, **staff},
        )
        await api.ok("POST", "/v1/coupons/redeem", {"till": "till-1", "coupon": welcome, **staff})
        await offline(api.gw, link)
        await api.ok(
            "POST",
            "/v1/points/accrue",
            {"till": "till-1", "amount": "5.00", "currency": "EUR", "receipt_id": "S-1", **staff},
        )
        await api.ok(
            "POST",
            "/v1/appointments/checkin",
            {"till": "till-1", "appointment_id": seed.APPT_SOON, **staff},
        )
        assert (
            await api.refused(
                "POST",
                "/v1/identify",
                {
                    "till": "till-1",
                    "by": "member_id",
                    "member_id": seed.ALICE,
                    "staff": "no spaces",
                },
            )
        )[1] == "bad_request"
        await link.restore()
        await online(api.gw)
        kinds = ("member.identified", "coupon.redeemed", "points.accrued", "appointment.checked_in")
        for kind in kinds:
            events = await cloud_events(cloud, kind)
            assert [e.get("staff") for e in events] == ["staff-anna"], kind


async def test_a_till_the_store_did_not_declare_is_refused_naming_the_declared_ones(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    devices = [{"id": "door-nfc", "kind": "nfc", "till": "door", "enabled": False}]
    async with api_running(link, tmp_path / "gw", devices=devices, tills=["till-1"]) as api:
        body = {"till": "till-9", "by": "member_id", "member_id": seed.ALICE}
        status, doc = await api.call("POST", "/v1/identify", body)
        assert (status, doc["error"]["code"]) == (400, "bad_request")
        assert doc["error"]["details"] == {"tills": ["door", "till-1"]}  # declared + a device's
        assert "till-9" in doc["error"]["message"]
        for path, extra in (
            ("/v1/points/accrue", {"amount": "1", "currency": "EUR", "receipt_id": "R"}),
            ("/v1/appointments/checkin", {"appointment_id": seed.APPT_SOON}),
        ):
            status, doc = await api.call("POST", path, {"till": "till-9", **extra})
            assert (status, doc["error"]["code"]) == (400, "bad_request"), path
        ok = await api.ok("POST", "/v1/identify", {**body, "till": "door"})
        assert ok["member"]["member_id"] == seed.ALICE


async def test_a_pos_token_never_sees_coupon_bearer_tokens_an_admin_token_does(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with api_running(link, tmp_path / "gw") as api:
        admin = api.tokens.create("office", role="admin")
        for path, body in (
            (f"/v1/members/{seed.ALICE}", None),
            ("/v1/identify", {"till": "till-1", "by": "member_id", "member_id": seed.ALICE}),
        ):
            method = "GET" if body is None else "POST"
            pos_view = (await api.ok(method, path, body))["member"]["coupons"]
            status, admin_doc = await api.call(method, path, body, token=admin)
            assert status == 200
            admin_view = admin_doc["member"]["coupons"]
            assert admin_view, "Alice has coupons to show"
            assert all(c["token"].startswith("SGC1:") for c in admin_view)
            assert pos_view == [{k: v for k, v in c.items() if k != "token"} for c in admin_view]
        assert {c.name: c.role for c in api.tokens.list()} == {"pos-1": "pos", "office": "admin"}
