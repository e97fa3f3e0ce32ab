"""Counter operations (identify, redeem, pick up, accrue, check in, stored value, points),
online and offline.

The rules are in docs/member-services.md. In short: tokens are verified locally before the
cloud is asked, so a forged or expired coupon never needs the cloud; the cloud decides when
it answers within ``rpc_timeout_s`` (``mode: online``), the local ledger and caches decide
otherwise (``mode: offline``); every operation returns only after its ledger row and its
event are committed (one transaction: the ledger lives in the outbox's file, ``ledger_path``),
and whatever was decided offline is confirmed later by the reconciler.

:class:`CounterService` wires the rooms together: the ledger (:mod:`.ledger`), members,
coupons, order pickups (:mod:`.pickups`), accruals and check-ins (:mod:`.operations`), stored
value (:mod:`.wallet`), points spent and reversed (:mod:`.points`), service packages
(:mod:`.packages`), the till devices (:mod:`.routing`) and the reconciler, which works on the
ledger alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import JsonValue

from core.events import JsonObject, Reading
from core.ids import utcnow
from core.lifecycle import AsyncResource
from gateway.counter.answer_models import (
    AccrueAnswer,
    CheckinAnswer,
    IdentifyAnswer,
    MemberAnswer,
    PickupAnswer,
    RedeemAnswer,
)
from gateway.counter.asset_models import (
    BalanceAnswer,
    BalanceConflict,
    JoinAnswer,
    JoinRequest,
    PackageAnswer,
    PackageConflict,
    PackageUseRequest,
    PayRequest,
    PointsAnswer,
    PointsConflict,
    PointsRedeemRequest,
    PointsReverseRequest,
    RefundRequest,
    TopupRequest,
)
from gateway.counter.config import CounterSection
from gateway.counter.conflict_models import Conflict, ConflictItem, ConflictKind, PickupConflict
from gateway.counter.coupons import Coupons
from gateway.counter.errors import CounterError
from gateway.counter.joins import Joins
from gateway.counter.keys import CloudKeys
from gateway.counter.ledger import Ledger, Submit
from gateway.counter.members import Members
from gateway.counter.model_base import Mode
from gateway.counter.operations import Operations
from gateway.counter.origin import Origin
from gateway.counter.packages import Packages
from gateway.counter.pickups import Pickups
from gateway.counter.points import Points
from gateway.counter.reconcile import Reconciler
from gateway.counter.replay import ReplayCache
from gateway.counter.request_models import (
    AccrueRequest,
    CheckinRequest,
    IdentifyRequest,
    PickupRequest,
    RedeemRequest,
)
from gateway.counter.reservations import Alone, Reservations
from gateway.counter.routing import TillRouter
from gateway.counter.store import CounterStore
from gateway.counter.tills import TillSessions
from gateway.counter.wallet import Wallet
from gateway.counter.worklist import Worklist
from gateway.rpc import RpcClient

log = logging.getLogger(__name__)


class CounterService(AsyncResource):
    """Construct, enter (``async with``: opens the ledger, loads keys), then ``run()``."""

    def __init__(
        self,
        cfg: CounterSection,
        *,
        store_id: str,
        data_dir: Path,
        ledger_path: Path,
        rpc: RpcClient,
        submit: Submit,
        durability: Literal["power-loss", "crash"] = "power-loss",
        clock: Callable[[], datetime] = utcnow,
        tills: frozenset[str] = frozenset(),
        gateway_id: str = "gateway",
        reservations: Reservations | None = None,
    ) -> None:
        self.cfg = cfg
        self.known_tills = tills
        """The tills a request may name (``Config.tills()``): another is a typo or a guess."""
        self.store_id = store_id
        self.rpc = rpc
        self.clock = clock
        self.store = CounterStore(
            ledger_path,
            legacy=data_dir / "counter.db",
            member_cache_size=cfg.member_cache_size,
            durability=durability,
        )
        self.keys = CloudKeys(data_dir / "cloud-keys.json", cfg.cloud_keys_file)
        self.tills = TillSessions(cfg.till_session_s)
        self.replay = ReplayCache(self.store, cfg.qr_window_s)
        self.ledger = Ledger(
            self.store,
            rpc=rpc,
            rpc_timeout_s=cfg.rpc_timeout_s,
            submit=submit,
            clock=clock,
            gateway_id=gateway_id,
            reservations=reservations or Alone(),
        )
        self.members = Members(
            self.ledger,
            keys=self.keys,
            tills=self.tills,
            replay=self.replay,
            qr_window_s=cfg.qr_window_s,
        )
        self.coupons = Coupons(
            self.ledger,
            keys=self.keys,
            tills=self.tills,
            store_id=store_id,
            offline_max_value=cfg.offline_max_value,
        )
        self.pickups = Pickups(self.ledger, keys=self.keys, tills=self.tills, store_id=store_id)
        self.operations = Operations(self.ledger, tills=self.tills, store_id=store_id)
        self.wallet = Wallet(
            self.operations,
            keys=self.keys,
            offline_total=cfg.offline_balance_total,
            offline_topup=cfg.offline_topup,
        )
        self.points = Points(self.wallet)
        self.packages = Packages(self.wallet)
        self.joins = Joins(self.operations)
        self.router = TillRouter(
            self.ledger,
            members=self.members,
            coupons=self.coupons,
            pickups=self.pickups,
            operations=self.operations,
        )
        self.reconciler = Reconciler(self.ledger, cfg.reconcile_interval_s)
        self.worklist = Worklist(self.ledger, self._conflict_items)

    async def open(self) -> None:
        self.keys.load()
        await self.store.open()
        try:
            voided = await self.store.void_reserved()
        except BaseException:  # cancelled during start-up: do not strand the store
            await self.store.close()
            raise
        if voided:
            log.warning("redemptions interrupted by a restart were voided", extra={"count": voided})

    async def close(self) -> None:
        await self.store.close()

    async def run(self) -> None:
        """The reconciler and the till workers; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self.router.start(tg)
            tg.create_task(self.reconciler.run(), name="counter-reconciler")

    # --- what the API, the kiosk and the daemon call --------------------------------------

    def mode_now(self) -> Mode:
        return self.ledger.mode_now()

    async def call(self, method: str, args: JsonObject) -> JsonObject:
        return await self.ledger.call(method, args)

    async def identify(self, req: IdentifyRequest, origin: Origin) -> IdentifyAnswer:
        self.check_till(req.till)
        return await self.members.identify(req, origin)

    async def member(self, member_id: str) -> MemberAnswer:
        return await self.members.member(member_id)

    async def redeem(self, req: RedeemRequest, origin: Origin) -> RedeemAnswer:
        self.check_till(req.till)
        return await self.coupons.redeem(req, origin)

    async def conflicts(self) -> list[Conflict]:
        return await self.coupons.conflicts()

    async def pickup(self, req: PickupRequest, origin: Origin) -> PickupAnswer:
        self.check_till(req.till)
        return await self.pickups.pickup(req, origin)

    async def pickup_conflicts(self) -> list[PickupConflict]:
        return await self.pickups.conflicts()

    async def accrue(self, req: AccrueRequest, origin: Origin) -> AccrueAnswer:
        self.check_till(req.till)
        return await self.operations.accrue(req, origin)

    async def checkin(self, req: CheckinRequest, origin: Origin) -> CheckinAnswer:
        self.check_till(req.till)
        return await self.packages.checkin(req, origin)

    async def pay(self, req: PayRequest, origin: Origin) -> BalanceAnswer:
        self.check_till(req.till)
        return await self.wallet.pay(req, origin)

    async def refund(self, req: RefundRequest, origin: Origin) -> BalanceAnswer:
        self.check_till(req.till)
        return await self.wallet.refund(req, origin)

    async def topup(self, req: TopupRequest, origin: Origin) -> BalanceAnswer:
        self.check_till(req.till)
        return await self.wallet.topup(req, origin)

    async def balance_conflicts(self) -> list[BalanceConflict]:
        return await self.wallet.conflicts()

    async def redeem_points(self, req: PointsRedeemRequest, origin: Origin) -> PointsAnswer:
        self.check_till(req.till)
        return await self.points.redeem(req, origin)

    async def reverse_points(self, req: PointsReverseRequest, origin: Origin) -> PointsAnswer:
        self.check_till(req.till)
        return await self.points.reverse(req, origin)

    async def points_conflicts(self) -> list[PointsConflict]:
        return await self.points.conflicts()

    async def join(self, req: JoinRequest, origin: Origin, *, channel: str) -> JoinAnswer:
        self.check_till(req.till)
        return await self.joins.join(req, origin, channel=channel)

    async def use_package(self, req: PackageUseRequest, origin: Origin) -> PackageAnswer:
        self.check_till(req.till)
        return await self.packages.use(req, origin)

    async def package_conflicts(self) -> list[PackageConflict]:
        return await self.packages.conflicts()

    async def _conflict_items(self) -> list[ConflictItem]:
        """Every conflict of every kind, as an open work item (the worklist applies states)."""
        items = [_item("coupon", c.redemption_id, c.reason, c) for c in await self.conflicts()]
        items += [_item("pickup", c.pickup_id, c.reason, c) for c in await self.pickup_conflicts()]
        items += [
            _item("payment", c.payment_id, "shortfall", c) for c in await self.balance_conflicts()
        ]
        items += [
            _item("points", c.redeem_id, "shortfall", c) for c in await self.points_conflicts()
        ]
        items += [
            _item("package", c.use_id, "shortfall", c) for c in await self.package_conflicts()
        ]
        return items

    def check_till(self, till: str) -> None:
        """Refuse a till the configuration does not name, listing the ones it does."""
        if till not in self.known_tills:
            known = sorted(self.known_tills)
            raise CounterError(
                "bad_request",
                f"unknown till {till!r}; configured: {', '.join(known) or 'none'}"
                " ([counter] tills, a device's till, a kiosk's name)",
                mode=self.mode_now(),
                details={"tills": list[JsonValue](known)},
            )

    def on_device_reading(self, device_id: str, till: str, reading: Reading) -> None:
        self.router.on_device_reading(device_id, till, reading)

    async def status(self) -> JsonObject:
        conflicts: list[JsonValue] = [c.model_dump(mode="json") for c in await self.conflicts()]
        pickup_conflicts: list[JsonValue] = [
            c.model_dump(mode="json") for c in await self.pickup_conflicts()
        ]
        balance: list[JsonValue] = [
            c.model_dump(mode="json") for c in await self.balance_conflicts()
        ]
        points: list[JsonValue] = [c.model_dump(mode="json") for c in await self.points_conflicts()]
        packages: list[JsonValue] = [
            c.model_dump(mode="json") for c in await self.package_conflicts()
        ]
        return {
            "conflicts": conflicts,
            "pickup_conflicts": pickup_conflicts,
            "balance_conflicts": balance,
            "points_conflicts": points,
            "package_conflicts": packages,
            "conflict_items": [i.model_dump(mode="json") for i in await self.worklist.items()],
            "ledger": await self.store.counts(),
            "cloud_keys": list[JsonValue](self.keys.keyset.kids),
            "tills": [{"till": s.till, "member_id": s.member_id} for s in self.tills.active()],
            "reconcile": self.reconciler.as_json(),
        }


class _Listed(Protocol):
    """What every kind of conflict says of itself."""

    @property
    def detected_at(self) -> str: ...
    @property
    def till(self) -> str | None: ...
    @property
    def member_id(self) -> str | None: ...


def _item(kind: ConflictKind, key: str, reason: str, conflict: _Listed) -> ConflictItem:
    return ConflictItem(
        conflict_id=f"{kind}:{key}",
        kind=kind,
        state="open",
        reason=reason,
        detected_at=conflict.detected_at,
        till=conflict.till,
        member_id=conflict.member_id,
    )
