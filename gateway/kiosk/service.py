"""The kiosks of a store: what their devices saw, what the cloud tells them, and the two
things a kiosk needs beyond a till (claiming an offered coupon, listing appointments).

A kiosk's devices are not tills: the counter does not act on their scans. Each accepted
reading is pushed to the kiosk's open pages, and the page (a member standing in front of it)
decides what to do with it through the API, with the kiosk's own token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.events import JsonObject, Reading
from core.ids import new_id, rfc3339, utcnow
from gateway.commands import Command, CommandCode, CommandError
from gateway.counter.errors import CounterError, cloud_error
from gateway.counter.model_base import Mode
from gateway.feature import BaseFeature
from gateway.kiosk.config import KioskConfig
from gateway.kiosk.hub import KioskHub
from gateway.kiosk.models import (
    Appointment,
    AppointmentsAnswer,
    ClaimAnswer,
    ClaimedCoupon,
    ClaimRequest,
    KioskDevice,
    KioskInfo,
    KioskMessage,
    KioskMessageArgs,
    KioskMessageResult,
    push,
)
from gateway.rpc import RpcError, RpcRefused

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.api.auth import TokenStore
    from gateway.counter.service import CounterService
    from gateway.supervisor import DeviceSupervisor

log = logging.getLogger(__name__)

TOKEN_CHECK_S = 2.0
"""How often the tokens of open sockets are checked: a revocation closes them this soon."""
MODE_POLL_S = 0.25
"""How often, while the cloud is reachable, open pages are compared with the link's mode (a
page told a stale mode in its hello is corrected this soon). Offline there is nothing to
poll for: the bridge says when the link comes back."""
_CLAIM_CODES = {"offer_ended": "expired", "bad_args": "bad_request"}
"""Cloud codes of ``coupon.claim`` that map to another documented API code (``bad_args``:
the client reused its ``claim_id`` for another claim)."""


class KioskService(BaseFeature):
    """A feature of the daemon (with the API only): its command, readings and watchers."""

    name = "kiosk"

    def __init__(
        self,
        kiosks: list[KioskConfig],
        *,
        store_id: str,
        counter: CounterService,
        devices: Mapping[str, DeviceSupervisor],
        tokens: TokenStore,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.kiosks = {k.name: k for k in kiosks}
        self.store_id = store_id
        self.counter = counter
        self.devices = devices
        self.tokens = tokens
        self.clock = clock
        self.hub = KioskHub()
        self._device_kiosk = {d: k.name for k in kiosks for d in k.devices}
        self._online = asyncio.Event()
        """Set while a session to the cloud is up: the mode watcher polls only then."""

    # --- devices -> pages -----------------------------------------------------------------

    def on_reading(self, device_id: str, reading: Reading) -> None:
        """A reading listener (called once the reading is durable); never blocks."""
        kiosk = self._device_kiosk.get(device_id)
        if kiosk is None:
            return
        ts = rfc3339(reading.ts)
        data = reading.data
        if reading.kind == "scan" and isinstance(data.get("code"), str):
            message = push("scan", device_id=device_id, code=data["code"], ts=ts)
        elif reading.kind in ("nfc", "card") and isinstance(data.get("uid"), str):
            by = "nfc" if reading.kind == "nfc" else "card"
            message = push("tap", device_id=device_id, by=by, uid=data["uid"], ts=ts)
        elif reading.kind == "device.status":
            message = push("device", device_id=device_id, state=data.get("state"), ts=ts)
        else:
            return
        delivered = self.hub.publish(kiosk, message)
        log.debug(
            "kiosk reading pushed",
            extra={"kiosk": kiosk, "kind": reading.kind, "delivered": delivered},
        )

    def mode(self) -> Mode:
        return self.counter.mode_now()

    def on_connected(self) -> None:
        self._online.set()
        self.hub.sync_mode(self.mode())

    def on_disconnected(self) -> None:
        self._online.clear()
        self.hub.sync_mode(self.mode())

    async def watch_mode(self) -> None:
        """While online, compare each open page with what it was last told, so none keeps a
        stale mode from its hello; offline, wait for :meth:`on_connected`."""
        while True:
            await self._online.wait()
            await asyncio.sleep(MODE_POLL_S)
            if self._online.is_set():  # on_disconnected has told the pages already
                self.hub.sync_mode(self.mode())

    async def watch_tokens(self) -> None:
        """Close the sockets of revoked tokens: a socket has no next request to refuse."""
        while True:
            await asyncio.sleep(TOKEN_CHECK_S)
            subs = self.hub.subscribers()
            if not subs:
                continue
            try:
                valid = {(c.name, c.kiosk) for c in await asyncio.to_thread(self.tokens.list)}
            except Exception:  # a locked or broken token file: try again next time
                log.exception("could not check kiosk tokens")
                continue
            for sub in subs:
                if (sub.client, sub.kiosk) not in valid:
                    log.info(
                        "kiosk token revoked, closing its socket",
                        extra={"kiosk": sub.kiosk, "client": sub.client},
                    )
                    self.hub.revoke(sub)

    # --- the cloud -> pages ---------------------------------------------------------------

    def commands(self) -> Sequence[Command[Any, Any]]:
        return (
            Command("kiosk.message", self._message_command, KioskMessageArgs, KioskMessageResult),
        )

    async def _message_command(self, req: KioskMessageArgs) -> KioskMessageResult:
        if req.kiosk not in self.kiosks:
            raise CommandError(
                CommandCode.BAD_ARGS,
                f"no kiosk named {req.kiosk!r}",
                details={"kiosks": list(self.kiosks)},
            )
        now = self.clock()
        message = KioskMessage(
            message_id=req.message_id or new_id(),
            text=req.text,
            sent_at=rfc3339(now),
            expires_at=rfc3339(now + timedelta(seconds=req.ttl_s)) if req.ttl_s > 0 else None,
        )
        self.hub.remember(req.kiosk, message, req.ttl_s)
        delivered = self.hub.publish(
            req.kiosk, push("message", message=message.model_dump(mode="json"))
        )
        log.info(
            "kiosk message",
            extra={"kiosk": req.kiosk, "message_id": message.message_id, "delivered": delivered},
        )
        return KioskMessageResult(
            kiosk=req.kiosk,
            message_id=message.message_id,
            delivered=delivered,
            expires_at=message.expires_at,
        )

    # --- what the kiosk routes answer -----------------------------------------------------

    def info(self, kiosk: str, client: str) -> KioskInfo:
        cfg = self.kiosks.get(kiosk)
        if cfg is None:
            raise CounterError(
                "forbidden",
                f"this token is bound to kiosk {kiosk!r}, which the configuration does not have",
            )
        devices = []
        for device_id in cfg.devices:
            sup = self.devices.get(device_id)
            if sup is not None:
                devices.append(
                    KioskDevice(device_id=device_id, kind=sup.config.kind, state=sup.health.state)
                )
        return KioskInfo(
            kiosk=kiosk,
            client=client,
            store_id=self.store_id,
            mode=self.mode(),
            language=cfg.language,
            idle_reset_s=cfg.idle_reset_s,
            devices=devices,
            message=self.hub.message(kiosk),
        )

    async def claim(self, req: ClaimRequest) -> ClaimAnswer:
        """Ask the cloud for the offered coupon; there is no offline claim (only the cloud
        can sign a coupon), so an unreachable cloud is ``unavailable``."""
        claim_id = req.claim_id or new_id()
        args: JsonObject = {
            "claim_id": claim_id,
            "member_id": req.member_id,
            "offer_id": req.offer_id,
            "till": req.till,
            "channel": "kiosk" if req.till in self.kiosks else "till",
        }
        try:
            data = await self.counter.call("coupon.claim", args)
        except RpcRefused as exc:
            raise cloud_error(exc.code, exc.message, exc.details, _CLAIM_CODES) from None
        except RpcError:
            raise CounterError(
                "unavailable",
                "claiming a coupon needs the cloud, which is unreachable; try again later",
                mode="offline",
            ) from None
        try:
            coupon = ClaimedCoupon.model_validate(data.get("coupon"))
        except ValidationError:
            log.error("the cloud answered coupon.claim without a coupon")
            raise CounterError("unavailable", "the cloud sent no coupon", mode="online") from None
        return ClaimAnswer(
            mode="online",
            claim_id=claim_id,
            offer_id=req.offer_id,
            member_id=req.member_id,
            coupon=coupon,
        )

    async def appointments(self, member_id: str) -> AppointmentsAnswer:
        """From the cloud (via the member profile) online, else from the member cache, with
        the check-ins this gateway recorded that the cached profile cannot know about."""
        answer = await self.counter.member(member_id)
        raw = answer.member.get("appointments")
        items: list[Any] = raw if isinstance(raw, list) else []
        local = await self._local_checkins() if answer.mode == "offline" else {}
        out: list[Appointment] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            doc = dict(item)
            pending = local.get(str(doc.get("appointment_id")))
            if pending is not None and doc.get("status") == "booked":
                doc["status"] = "checked_in"
                doc["pending"] = pending
            try:
                out.append(Appointment.model_validate(doc))
            except ValidationError:
                log.warning("skipped a malformed cached appointment", extra={"member": member_id})
        return AppointmentsAnswer(
            mode=answer.mode,
            cached=answer.cached,
            member_id=member_id,
            store_id=self.store_id,
            appointments=out,
        )

    async def _local_checkins(self) -> dict[str, bool]:
        """appointment id -> still pending, for check-ins in this gateway's ledger."""
        found: dict[str, bool] = {}
        for status in ("confirmed", "pending"):
            for op in await self.counter.store.operations(status):
                appointment = op.args.get("appointment_id")
                if op.kind == "checkin" and isinstance(appointment, str):
                    found[appointment] = status == "pending"
        return found

    # --- running ------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watch_mode(), name="kiosk-mode")
            tg.create_task(self.watch_tokens(), name="kiosk-tokens")

    async def shutdown(self, _app: web.Application) -> None:
        """aiohttp on_shutdown: end the sockets before the server waits for them."""
        self.hub.close_all()
