"""Service packages at the till (次卡 / 服务次数): a session used by itself or by checking in
an appointment booked against the package, online and within the offline rules.

Online the cloud decides (a check-in uses the session in its own transaction there). Offline a
package is used only for the member identified at the till, against their wallet credential
(which signs each package's sessions left), one session at a time and at most once per
package and visit (the ledger's day, UTC): a package session is never used twice offline in
one store visit, and never more than the credential left less what this gateway used since it
was signed. An offline check-in of an appointment booked against a package (the cached
profile says which) counts as that visit's use. Both share the stored-value lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from core.events import JsonObject
from core.ids import rfc3339
from gateway.counter.answer_models import CheckinAnswer
from gateway.counter.asset_models import PackageAnswer, PackageConflict, PackageUseRequest
from gateway.counter.errors import CounterError
from gateway.counter.ledger import Ledger
from gateway.counter.operations import OfflineRule
from gateway.counter.origin import Origin
from gateway.counter.request_models import CheckinRequest
from gateway.counter.reservations import token_for
from gateway.counter.rows import Operation, OpKind
from gateway.counter.store_holds import claim_for, hold, unreachable
from gateway.counter.wallet import Wallet, text_or_none
from gateway.wire.tokens import PackageClaim, WalletCredential


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


@dataclass(frozen=True, slots=True)
class _Use:
    """One session of a package this gateway recorded (a use, or a check-in's)."""

    op: Operation
    sessions: int


@dataclass(eq=False)
class Packages:
    wallet: Wallet

    @property
    def ledger(self) -> Ledger:
        return self.wallet.ledger

    async def _booked(self, member_id: str | None) -> dict[str, str]:
        """The member's cached appointments booked against a package: appointment -> package."""
        if member_id is None:
            return {}
        profile = await self.ledger.store.cached_member(member_id)
        appointments = [] if profile is None else profile.get("appointments")
        out: dict[str, str] = {}
        for a in appointments if isinstance(appointments, list) else []:
            if isinstance(a, dict):
                appointment, package = a.get("appointment_id"), a.get("package_id")
                if isinstance(appointment, str) and isinstance(package, str):
                    out[appointment] = package
        return out

    async def _uses(self, member_id: str, package_id: str, since: float) -> list[_Use]:
        """The package's sessions this gateway recorded for the member since ``since``."""
        booked = await self._booked(member_id)
        out: list[_Use] = []
        kinds: list[OpKind] = ["package_use", "checkin"]
        for op in await self.ledger.store.live_operations(kinds, since=since):
            if op.args.get("member_id") != member_id:
                continue
            if op.kind == "package_use" and op.args.get("package_id") == package_id:
                sessions = op.args.get("sessions")
                out.append(_Use(op, sessions if isinstance(sessions, int) else 1))
            elif op.kind == "checkin" and booked.get(str(op.args.get("appointment_id"))) == (
                package_id
            ):
                out.append(_Use(op, 1))
        return out

    async def _allow_one(
        self,
        credential: WalletCredential,
        package_id: str,
        sessions: int,
        *,
        key: str,
        till: str | None,
    ) -> PackageClaim:
        """Refuse what the offline rules rule out for one session of ``package_id`` now."""
        claim = next((p for p in credential.packages if p.package_id == package_id), None)
        if claim is None:
            raise CounterError(
                "not_found",
                "no such package among the member's signed packages",
                mode="offline",
            )
        if sessions != 1:
            raise CounterError(
                "over_offline_limit",
                "offline, a package is used one session at a time",
                mode="offline",
                details={"available": 1},
            )
        now = self.ledger.clock()
        today = now.date()
        since = credential.issued_at.timestamp()
        day_start = datetime.combine(today, time.min, UTC).timestamp()
        uses = await self._uses(credential.member_id, package_id, min(since, day_start))
        earlier = next((u for u in uses if _day(u.op.created) == today), None)
        if earlier is not None:
            raise CounterError(
                "already_used",
                "this package was used already on this visit; more needs the cloud",
                mode="offline",
                details={
                    "used_at": rfc3339(earlier.op.created),
                    "till": text_or_none(earlier.op.origin.get("till")),
                },
            )
        left = claim.left - sum(u.sessions for u in uses if u.op.created >= since)
        if left < 1:
            raise CounterError(
                "used_up", "the package has no sessions left", mode="offline", details={"left": 0}
            )
        if self.ledger.reservations.shared:  # once per visit in the store, not per gateway
            token = token_for("package", f"{package_id}:{today.isoformat()}")
            visit = claim_for(self.ledger, token, key, till)
            if not await hold(self.ledger, visit, "package's session for this visit"):
                raise unreachable()
        return claim

    async def _left(self, credential: WalletCredential, package_id: str) -> int | None:
        claim = next((p for p in credential.packages if p.package_id == package_id), None)
        if claim is None:
            return None
        since = credential.issued_at.timestamp()
        uses = await self._uses(credential.member_id, package_id, since)
        return claim.left - sum(u.sessions for u in uses)

    async def use(self, req: PackageUseRequest, origin: Origin) -> PackageAnswer:
        member_id = self.wallet.present(req.till, req.member_id)
        args: JsonObject = {
            "use_id": req.use_id,
            "member_id": member_id,
            "package_id": req.package_id,
            "sessions": req.sessions,
            "till": req.till,
        }

        async def decide() -> JsonObject:
            credential = await self.wallet.credential(member_id, req.wallet)
            await self._allow_one(
                credential, req.package_id, req.sessions, key=req.use_id, till=req.till
            )
            return {
                "offline_at": rfc3339(self.ledger.clock()),
                "credential_id": credential.credential_id,
            }

        rule = OfflineRule(self.wallet.offline_lock, decide)
        op = await self.wallet.operations.record(
            req.use_id, "package_use", args, req.till, origin, offline=rule
        )
        result = op.result or {}
        answer = PackageAnswer(
            mode="offline" if op.status == "pending" else "online",
            status="pending" if op.status == "pending" else "confirmed",
            use_id=req.use_id,
            member_id=member_id,
            package_id=req.package_id,
            sessions=req.sessions,
            service=text_or_none(result.get("service")),
            left=result.get("left") if isinstance(result.get("left"), int) else None,
        )
        if op.status != "pending":
            return answer
        try:
            credential = await self.wallet.credential(member_id, req.wallet)
        except CounterError:
            return answer
        claim = next((p for p in credential.packages if p.package_id == req.package_id), None)
        return answer.model_copy(
            update={
                "service": None if claim is None else claim.service,
                "left": await self._left(credential, req.package_id),
                "projected": True,
            }
        )

    async def checkin(self, req: CheckinRequest, origin: Origin) -> CheckinAnswer:
        """A check-in; offline, one of an appointment booked against a package must pass the
        package's offline rules too (when the member's credential is cached)."""
        member_id = req.member_id or self.wallet.operations.tills.member(req.till)

        async def decide() -> JsonObject:
            package_id = (await self._booked(member_id)).get(req.appointment_id)
            if package_id is not None and member_id is not None:
                try:
                    credential = await self.wallet.credential(member_id, None)
                except CounterError as exc:
                    if exc.code != "needs_cloud":
                        raise
                else:  # no credential cached: the cloud decides, as for an unverified check-in
                    await self._allow_one(
                        credential,
                        package_id,
                        1,
                        key=req.checkin_id or req.appointment_id,
                        till=req.till,
                    )
            return await self.wallet.operations.offline_now()

        rule = OfflineRule(self.wallet.offline_lock, decide)
        return await self.wallet.operations.checkin(req, origin, offline=rule)

    async def conflicts(self) -> list[PackageConflict]:
        out = []
        for op in await self.ledger.store.operations("conflict"):
            if op.kind not in ("package_use", "checkin"):
                continue
            result = op.result or {}
            package = result.get("package") if op.kind == "checkin" else result
            found = package if isinstance(package, dict) else {}
            out.append(
                PackageConflict(
                    use_id=op.op_id,
                    member_id=text_or_none(op.args.get("member_id")),
                    package_id=str(found.get("package_id", op.args.get("package_id", ""))),
                    shortfall=_int(found.get("shortfall")),
                    left=_int(found.get("left")),
                    till=text_or_none(op.origin.get("till")),
                    appointment_id=text_or_none(op.args.get("appointment_id")),
                    offline_at=text_or_none(op.args.get("offline_at")),
                    detected_at=rfc3339(op.updated),
                )
            )
        return out


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
