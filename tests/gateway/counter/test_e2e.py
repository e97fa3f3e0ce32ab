"""Nothing the counter accepted is lost: the daemon as a process, an outage, then kill -9.

The daemon runs as ``python -m storegw run -c FILE`` with the local API on; the test is the
POS (HTTP) and the cloud (the simulator, connected to the broker throughout). The store's
uplink is cut, the till keeps working offline, the daemon is killed with SIGKILL, restarted,
the link comes back, and every answer the till got is then found at the cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w

from gateway.api.auth import TokenStore
from simulators.broker import MosquittoBroker, free_port
from simulators.cloud import CloudService, seed
from tests.support.link import Link
from tests.support.paths import REPO
from tests.support.waiting import eventually, wait_for


class DaemonProcess:
    def __init__(self, conf: Path, log: Path) -> None:
        self.conf = conf
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "storegw",
                "run",
                "-c",
                str(self.conf),
                cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    async def kill(self, sig: int = signal.SIGKILL) -> int:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc and proc.returncode is not None else 0
        proc.send_signal(sig)
        try:
            async with asyncio.timeout(10):
                return await proc.wait()
        except TimeoutError:
            proc.kill()
            return await proc.wait()


@contextlib.asynccontextmanager
async def daemon(conf: Path, log: Path) -> AsyncIterator[DaemonProcess]:
    d = DaemonProcess(conf, log)
    try:
        yield d
    finally:
        await d.kill()


class Pos:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            return resp.status, await resp.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, doc = await self.call(method, path, body)
        assert status == 200, doc
        return doc

    async def up(self, timeout: float = 20) -> None:
        async def probe() -> bool:
            try:
                async with self.http.get(self.base + "/v1/openapi.json") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(probe, bool, timeout=timeout, interval=0.05, message="API up")


async def test_nothing_accepted_is_lost_across_an_outage_and_kill_9(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    link = Link(broker)
    await link.restore()
    data = tmp_path / "gw"
    port = free_port()
    conf = tmp_path / "storegw.toml"
    conf.write_text(
        tomli_w.dumps(
            {
                "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": str(data)},
                "mqtt": {
                    "url": link.url,
                    "keepalive_s": 5,
                    "reconnect_min_s": 0.05,
                    "reconnect_max_s": 0.3,
                    "connect_timeout_s": 3,
                },
                "outbox": {"durability": "crash"},
                "counter": {
                    "rpc_timeout_s": 1.0,
                    "reconcile_interval_s": 0.5,
                    "tills": ["t1", "t2", "t3"],
                },
                "api": {"listen": f"127.0.0.1:{port}"},
            }
        )
    )
    token = TokenStore(data / "api-tokens.db").create("pos-1")
    try:
        async with (
            asyncio.timeout(60),
            CloudService(broker.url, tmp_path / "cloud.db") as cloud,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
            daemon(conf, tmp_path / "daemon.log") as gw,
        ):
            pos = Pos(http, f"http://127.0.0.1:{port}", token)
            points_before = await cloud.member_points(seed.ALICE)
            await gw.start()
            await pos.up()
            await wait_for((data / "cloud-keys.json").exists, timeout=10, message="cloud keys")

            # online: the cloud decides
            ident = await pos.ok(
                "POST", "/v1/identify", {"till": "t1", "by": "card", "uid": seed.CARD_ALICE}
            )
            assert ident["mode"] == "online"
            welcome = await pos.ok(
                "POST",
                "/v1/coupons/redeem",
                {"till": "t1", "coupon": await cloud.coupon_token(seed.COUPON_WELCOME)},
            )
            assert welcome["mode"] == "online"
            handed = await pos.ok(
                "POST",
                "/v1/orders/pickup",
                {"till": "t1", "code": await cloud.order_token(seed.ORDER_ALICE)},
            )
            assert (handed["mode"], handed["status"]) == ("online", "accepted")
            first = await pos.ok(
                "POST",
                "/v1/points/accrue",
                {"till": "t1", "amount": "10", "currency": "EUR", "receipt_id": "R-1"},
            )
            assert first["status"] == "confirmed"
            paid = await pos.ok(
                "POST",
                "/v1/balance/pay",
                {
                    "till": "t1",
                    "payment_id": "P-1",
                    "amount": "5.00",
                    "currency": "EUR",
                    "receipt_id": "R-1",
                },
            )
            assert (paid["status"], paid["balance"]) == ("confirmed", "20.00")

            # outage: the till keeps working
            await link.cut()
            offline_ident = await pos.ok(
                "POST", "/v1/identify", {"till": "t1", "by": "card", "uid": seed.CARD_ALICE}
            )
            assert (offline_ident["mode"], offline_ident["cached"]) == ("offline", True)
            spring_token = await cloud.coupon_token(seed.COUPON_BEARER)
            spring = await pos.ok(
                "POST", "/v1/coupons/redeem", {"till": "t1", "coupon": spring_token}
            )
            gold = await pos.ok(
                "POST",
                "/v1/coupons/redeem",
                {"till": "t2", "coupon": await cloud.coupon_token(seed.COUPON_GOLD)},
            )
            second = await pos.ok(
                "POST",
                "/v1/points/accrue",
                {"till": "t1", "amount": "7", "currency": "EUR", "receipt_id": "R-2"},
            )
            checkin = await pos.ok(
                "POST", "/v1/appointments/checkin", {"till": "t1", "appointment_id": seed.APPT_SOON}
            )
            offline_pay = {
                "till": "t1",
                "payment_id": "P-2",
                "amount": "4.00",
                "currency": "EUR",
                "receipt_id": "R-2",
            }
            paid_offline = await pos.ok("POST", "/v1/balance/pay", offline_pay)
            assert (paid_offline["balance"], paid_offline["projected"]) == ("16.00", True)
            chloe_code = await cloud.order_token(seed.ORDER_CHLOE)
            pickup = await pos.ok("POST", "/v1/orders/pickup", {"till": "t2", "code": chloe_code})
            spent = await pos.ok(
                "POST",
                "/v1/points/redeem",
                {"till": "t1", "redeem_id": "PR-2", "points": 100, "receipt_id": "R-2"},
            )
            facial = await pos.ok(
                "POST",
                "/v1/packages/use",
                {"till": "t1", "use_id": "U-2", "package_id": seed.PACKAGE_FACIAL},
            )
            for answer in (spring, gold, second, checkin, paid_offline, pickup, spent, facial):
                assert answer["mode"] == "offline", answer
                assert answer["status"] == "pending", answer
            await cloud.mark_coupon_used(seed.COUPON_GOLD, store_id="S002")  # meanwhile

            # crash, restart with the link still down: the ledger survived
            assert await gw.kill(signal.SIGKILL) == -signal.SIGKILL
            await gw.start()
            await pos.up()
            status, again = await pos.call(
                "POST", "/v1/coupons/redeem", {"till": "t3", "coupon": spring_token}
            )
            assert (status, again["error"]["code"]) == (409, "already_used")
            status, twice = await pos.call(
                "POST", "/v1/orders/pickup", {"till": "t3", "code": chloe_code}
            )
            assert (status, twice["error"]["code"]) == (409, "already_used")
            assert await pos.ok("GET", "/v1/conflicts") == {
                "conflicts": [],
                "pickup_conflicts": [],
                "balance_conflicts": [],
                "points_conflicts": [],
                "package_conflicts": [],
                "items": [],
            }
            # the till that got no answer before the crash retries with its key: one payment
            await pos.ok(
                "POST", "/v1/identify", {"till": "t1", "by": "card", "uid": seed.CARD_ALICE}
            )
            retried = await pos.ok("POST", "/v1/balance/pay", offline_pay)
            assert (retried["status"], retried["payment_id"]) == ("pending", "P-2")

            # the link is back: reconciliation, replay, the conflict
            await link.restore()
            conflicts = await eventually(
                lambda: pos.ok("GET", "/v1/conflicts"),
                lambda doc: len(doc["conflicts"]) == 1,
                timeout=15,
                message="the conflict after reconciliation",
            )
            assert conflicts["conflicts"][0]["redemption_id"] == gold["redemption_id"]
            assert conflicts["conflicts"][0]["cloud"]["store_id"] == "S002"
            spring_state = await eventually(
                lambda: cloud.coupon(seed.COUPON_BEARER),
                lambda state: state is not None and state["used_store"] == "S001",
                timeout=10,
                message="the offline redemption confirmed",
            )
            assert spring_state is not None
            assert spring_state["redemption_id"] == spring["redemption_id"]
            await eventually(
                lambda: cloud.member_points(seed.ALICE),
                lambda points: points == points_before + 20 + 14 - 100,
                timeout=10,
                message="both accruals (gold: 2 points per EUR) and the redemption at the cloud",
            )
            chloe_order = await eventually(
                lambda: cloud.order(seed.ORDER_CHLOE),
                lambda state: state is not None and state["status"] == "collected",
                timeout=10,
                message="the offline pickup confirmed",
            )
            assert chloe_order is not None
            assert chloe_order["pickup_id"] == pickup["pickup_id"]
            await eventually(
                lambda: cloud.appointment(seed.APPT_SOON),
                lambda appointment: appointment["status"] == "checked_in",
                timeout=10,
                message="the offline check-in confirmed",
            )

            async def kinds() -> dict[str, list[dict[str, Any]]]:
                out: dict[str, list[dict[str, Any]]] = {}
                for kind in (
                    "member.identified",
                    "coupon.redeemed",
                    "points.accrued",
                    "appointment.checked_in",
                    "redemption.conflict",
                    "balance.paid",
                    "points.redeemed",
                    "package.used",
                    "order.picked_up",
                ):
                    out[kind] = await cloud.store.event_data(kind)
                return out

            events = await eventually(
                kinds,
                lambda k: (
                    len(k["coupon.redeemed"]) == 3
                    and len(k["redemption.conflict"]) == 1
                    and len(k["balance.paid"]) == 2
                    and len(k["points.redeemed"]) == 1
                    and len(k["package.used"]) == 1
                    and len(k["order.picked_up"]) == 2
                ),
                timeout=10,
                message="every event at the cloud",
            )
            report = cloud.report()
            alice = await cloud.member(seed.ALICE) or {}
            facials = await cloud.store.member_packages(seed.ALICE, now=cloud.clock())
    finally:
        await link.cut()
    redeemed = {e["redemption_id"]: e for e in events["coupon.redeemed"]}
    assert set(redeemed) == {
        welcome["redemption_id"],
        spring["redemption_id"],
        gold["redemption_id"],
    }
    assert redeemed[spring["redemption_id"]]["offline"] is True
    assert {e["accrual_id"] for e in events["points.accrued"]} == {
        first["accrual_id"],
        second["accrual_id"],
    }
    assert [e["checkin_id"] for e in events["appointment.checked_in"]] == [checkin["checkin_id"]]
    picked = {e["pickup_id"]: e for e in events["order.picked_up"]}  # each exactly once
    assert set(picked) == {handed["pickup_id"], pickup["pickup_id"]}
    assert picked[pickup["pickup_id"]]["offline"] is True
    assert [e["mode"] for e in events["member.identified"]] == ["online", "offline", "offline"]
    assert sorted(e["payment_id"] for e in events["balance.paid"]) == ["P-1", "P-2"]
    assert alice["balance"] == "16.00"  # 25.00 less both payments, each once
    assert [e["redeem_id"] for e in events["points.redeemed"]] == ["PR-2"]
    assert [e["use_id"] for e in events["package.used"]] == ["U-2"]
    assert alice["points"] == points_before + 20 + 14 - 100
    assert [p["left"] for p in facials if p["package_id"] == seed.PACKAGE_FACIAL] == [2]
    assert report["gaps"] == {"S001/gw-1": []}, json.dumps(report)
    # at-least-once delivery may repeat an event: each arrival is unique or a counted duplicate
    assert report["unique"] == report["received"] - report["duplicates"], json.dumps(report)
    assert report["malformed"] == 0
