"""Members at the counter: identify (member QR, card, NFC, id) and the profile read.

A member QR is verified locally first, so a forged or replayed code never needs the cloud; the
cloud's answer is cached so a card can be identified while it is unreachable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.events import JsonObject
from gateway.counter.answer_models import IdentifyAnswer, MemberAnswer
from gateway.counter.desk import TokenDesk
from gateway.counter.errors import CounterError, cloud_error
from gateway.counter.model_base import Mode, normalise_uid
from gateway.counter.origin import Origin
from gateway.counter.replay import ReplayCache, Replayed
from gateway.counter.request_models import IdentifyRequest
from gateway.outbox import AttachedRefused, OutboxError, Statement
from gateway.rpc import RpcError, RpcRefused
from gateway.wire.tokens import MemberCode, verify_member_qr

log = logging.getLogger(__name__)

_MEMBER_TOKEN_CODES = {
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "clock_window": "clock_window",
}


def _unknown_offline(what: str) -> CounterError:
    return CounterError("unknown_offline", f"{what} and the cloud is unreachable", mode="offline")


@dataclass(eq=False, kw_only=True)
class Members(TokenDesk):
    replay: ReplayCache
    qr_window_s: float

    def _verify_member_qr(self, text: str) -> MemberCode:
        return self.verified(
            lambda keys, now: verify_member_qr(text, keys, now=now, window_s=self.qr_window_s),
            _MEMBER_TOKEN_CODES,
            "invalid_code",
        )

    async def identify(self, req: IdentifyRequest, origin: Origin) -> IdentifyAnswer:
        if req.by != "qr":
            return await self._identify(req, origin, [])
        assert req.code is not None
        code = self._verify_member_qr(req.code.strip())
        try:
            async with self.replay.use(code) as used:
                return await self._identify(req, origin, used, member_id=code.member_id)
        except Replayed:
            raise self._replayed() from None

    def _replayed(self) -> CounterError:
        return CounterError(
            "replayed",
            "this member code was used already; ask for a fresh one",
            mode=self.ledger.mode_now(),
        )

    async def _identify(
        self,
        req: IdentifyRequest,
        origin: Origin,
        attached: list[Statement],
        *,
        member_id: str | None = None,
    ) -> IdentifyAnswer:
        """Ask the cloud, else the cache; the event, the cache update and the QR's use (in
        ``attached``) commit together."""
        ledger, store = self.ledger, self.ledger.store
        uid: str | None = None
        if member_id is not None:
            args: JsonObject = {"by": "qr", "member_id": member_id}
        elif req.by in ("card", "nfc"):
            assert req.uid is not None
            uid = normalise_uid(req.uid)
            args = {"by": req.by, "uid": uid}
        else:
            member_id = req.member_id
            args = {"by": "member_id", "member_id": member_id}
        mode: Mode
        try:
            data = await ledger.call("member.identify", args)
        except RpcRefused as exc:
            raise cloud_error(exc.code, exc.message, exc.details) from None
        except RpcError:
            mode, cached = "offline", True
            if uid is not None:
                found = await store.member_by_uid(uid)
                if found is None:
                    raise _unknown_offline("this card is not known locally") from None
                profile = found
            else:
                assert member_id is not None
                profile = await store.cached_member(member_id) or {"member_id": member_id}
            attached = [*attached, store.touch_statement(str(profile["member_id"]))]
        else:
            mode, cached = "online", False
            profile = _member_of(data)
            attached = [*attached, *store.cache_statements(profile, uid)]
        found_id = str(profile["member_id"])
        event: JsonObject = {
            "till": req.till,
            "by": req.by,
            "member_id": found_id,
            "mode": mode,
            "cached": cached,
            **origin.event_fields(),
        }
        if uid is not None:
            event["uid"] = uid
        try:
            await ledger.emit(
                origin.device_id, "member.identified", event, ledger.clock(), attached
            )
        except AttachedRefused:
            raise self._replayed() from None  # used meanwhile by another process
        except OutboxError as exc:
            raise CounterError(
                "unavailable", f"cannot record the event: {exc}", mode=mode
            ) from None
        self.tills.start(req.till, found_id)
        await self._visit(found_id, event, origin)
        return IdentifyAnswer(mode=mode, till=req.till, by=req.by, cached=cached, member=profile)

    async def _visit(self, member_id: str, identified: JsonObject, origin: Origin) -> None:
        """``member.visit`` when a member is first identified in this store on a day (the
        gateway's UTC day): what head office counts visits and attributes them by. The row's
        key makes it once per member and day, also with tills identifying at the same time."""
        ledger = self.ledger
        now = ledger.clock()
        day = now.date().isoformat()
        if await ledger.store.visited(member_id, day):
            return
        data: JsonObject = {**identified, "day": day}
        data.pop("uid", None)
        row = (
            "INSERT INTO visits (member_id, day, at) VALUES (?, ?, ?)",
            (member_id, day, time.time()),
        )
        try:
            await ledger.emit(origin.device_id, "member.visit", data, now, [row])
        except AttachedRefused:
            return  # another identification recorded today's visit meanwhile
        except OutboxError as exc:  # the identification stands; the visit is not worth failing it
            log.warning("visit not recorded", extra={"member_id": member_id, "error": str(exc)})

    async def member(self, member_id: str) -> MemberAnswer:
        """A read: the profile from the cloud (and cached), or from the cache when offline."""
        store = self.ledger.store
        try:
            data = await self.ledger.call(
                "member.identify", {"by": "member_id", "member_id": member_id}
            )
        except RpcRefused as exc:
            raise cloud_error(
                exc.code, exc.message, exc.details, {"unknown_member": "not_found"}
            ) from None
        except RpcError:
            cached = await store.cached_member(member_id)
            if cached is None:
                raise _unknown_offline("this member is not cached") from None
            return MemberAnswer(mode="offline", cached=True, member=cached)
        member = _member_of(data)
        await store.cache_member(member)
        return MemberAnswer(mode="online", cached=False, member=member)


def _member_of(data: JsonObject) -> JsonObject:
    """The cloud's member profile from its answer; an answer without one is a cloud fault."""
    member = data.get("member")
    if not isinstance(member, dict) or not isinstance(member.get("member_id"), str):
        raise CounterError("unavailable", "the cloud sent no member", mode="online")
    return member
