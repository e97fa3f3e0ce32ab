"""``GET /t/{store}/{placement}?...``: a tap, verified and recorded; then the join form or the
member page. ``POST /t/{store}/{placement}/join``: the member, made from the tap's form.

The member is remembered in a cookie (the member id with an HMAC under this server's secret,
HttpOnly, SameSite=Lax), so a member's next tap shows the member page. The phone number goes
only into the joins table: it is in no log line and no page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from aiohttp import web

from simulators.cloud.store import CloudStore, Refusal
from simulators.cloud.web import pages
from simulators.cloud.web.verify import TapVerdict, verify_tap

log = logging.getLogger(__name__)

E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
COOKIE: Final = "sgm"
TAP_TTL: Final = timedelta(minutes=15)
"""How long after a tap its join form may be sent."""
GATEWAY: Final = "sticker-web"
"""What the joins table names as the joining gateway for a join at the landing page."""

_REFUSALS: Final = {
    "replay": (409, "Already used"),
    "malformed": (400, "Not a sticker"),
    "legacy": (403, "Old sticker"),
    "unknown_key": (403, "Unknown sticker"),
    "bad_signature": (403, "Not a genuine sticker"),
}


class Landing:
    def __init__(self, store: CloudStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self._secret = secrets.token_bytes(32)

    # -- the member cookie

    def _cookie_value(self, member_id: str) -> str:
        mac = hmac.new(self._secret, member_id.encode(), hashlib.sha256).digest()[:16]
        return f"{member_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    def _member_of(self, request: web.Request) -> str | None:
        value = request.cookies.get(COOKIE, "")
        member_id, _, _ = value.rpartition(".")
        if member_id and hmac.compare_digest(self._cookie_value(member_id), value):
            return member_id
        return None

    def _remember(self, response: web.Response, member_id: str, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            self._cookie_value(member_id),
            max_age=365 * 86400,
            path="/t/",
            httponly=True,
            samesite="Lax",
            secure=secure,
        )

    # -- handlers

    async def tap(self, request: web.Request) -> web.Response:
        store_id = request.match_info["store"]
        placement = request.match_info["placement"]
        # The public URL is https (TLS ends in front of this service); the signature does not
        # cover the host, only what the sticker says.
        url = f"https://{request.host}{request.path_qs}"
        verdict = await verify_tap(
            self.store, url, store_id=store_id, placement=placement, now=self.clock()
        )
        log.info(
            "sticker tap",
            extra={
                "store_id": store_id,
                "placement": placement,
                "outcome": verdict.outcome,
                "tap_id": verdict.tap_id,
                "counter": verdict.counter,
            },
        )
        if not verdict.ok:
            return self._refused(verdict)
        member_id = self._member_of(request)
        member = await self.store.member_row(member_id) if member_id else None
        if member is not None:
            return _html(pages.member_page(member, placement, joined_now=False))
        return _html(pages.join_page(store_id, placement, verdict.tap_id))

    def _refused(self, verdict: TapVerdict) -> web.Response:
        status, title = _REFUSALS[verdict.outcome]
        return _html(pages.refused_page(title, verdict.reason), status=status)

    async def join(self, request: web.Request) -> web.Response:
        store_id = request.match_info["store"]
        placement = request.match_info["placement"]
        form = await request.post()
        tap_id = str(form.get("tap", ""))
        tap = await self.store.tap(tap_id) if tap_id else None
        if (
            tap is None
            or tap["outcome"] != "ok"
            or (tap["store_id"], tap["placement"]) != (store_id, placement)
        ):
            return _html(pages.refused_page("Tap again", "tap the sticker to join"), status=403)
        now = self.clock()
        if now - datetime.fromisoformat(str(tap["at"])) > TAP_TTL:
            return _html(pages.refused_page("Tap again", "this page is too old"), status=403)
        phone = str(form.get("phone", "")).strip()
        if not E164.fullmatch(phone):
            return _html(
                pages.join_page(store_id, placement, tap_id, "a number like +4915112345678"),
                status=400,
            )
        if form.get("consent") != "yes":
            return _html(
                pages.join_page(store_id, placement, tap_id, "joining needs your consent"),
                status=400,
            )
        join_id = f"sticker-{tap_id}"
        try:
            reply = await self.store.join(
                join_id=join_id,
                phone=phone,
                name=None,
                marketing=form.get("marketing") == "yes",
                where=(store_id, GATEWAY, None),
                staff=tap["staff"],
                channel="sticker",
                placement=placement,
                provisional_id=None,
                offline_at=None,
                now=now,
            )
        except Refusal:
            return _html(pages.refused_page("Tap again", "this tap was used to join"), status=409)
        await self.store.claim_tap_for_join(tap_id, join_id)
        member_id = str(reply["data"]["member_id"])
        log.info(
            "sticker join",
            extra={"store_id": store_id, "placement": placement, "member_id": member_id},
        )
        member = await self.store.member_row(member_id)
        assert member is not None
        response = _html(pages.member_page(member, placement, joined_now=True))
        self._remember(response, member_id, secure=request.secure)
        return response


def _html(body: str, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the tap URL is not passed on
    return response
