"""``GET /v1/tills/{till}/feed``: the till's own counter events, live, as Server-Sent Events.

A till hears what its devices did (a card tapped, a coupon scanned and redeemed or refused,
with the reason) and what was done for it through the API, the moment it is recorded: each
event is an SSE ``event: <kind>`` with ``id: <seq>`` (the outbox seq) and the event's data as
JSON. On connect the first event is ``session`` (the member identified at the till now, if
any). A till that reconnects sends ``Last-Event-ID`` (browsers' EventSource do) or
``?after=SEQ`` and gets what it missed while it is still kept
(:mod:`gateway.counter.feed`); when it may have missed more, a ``reset`` event says so first.
A kiosk token hears only its own kiosk, a till-bound POS token only its till. Without
``Accept: text/event-stream`` the answer is the same once, as JSON (a till that polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, JsonValue

from core.events import JsonObject
from gateway.api.app import KIOSK, ApiError, ApiExtension, Handler, own_till
from gateway.api.routes import Route
from gateway.counter.model_base import ID
from gateway.counter.service import CounterService


class FeedEvent(BaseModel):
    seq: int
    kind: str
    data: JsonObject


class FeedSnapshot(BaseModel):
    """The feed once, for a till that polls: its session and what is kept after ``after``."""

    till: str
    member_id: str | None
    mode: Literal["online", "offline"]
    reset: bool
    """The till may have missed events before these (see the stream's ``reset``)."""
    events: list[FeedEvent]


HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/tills/{till}/feed",
        "till_feed",
        "The till's own counter events, live (Server-Sent Events; resume with Last-Event-ID).",
        None,
        FeedSnapshot,
        ("bad_request", "not_found", "forbidden"),
        parameters=(
            {
                "name": "till",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": ID},
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "Resume after this seq (the last event id seen).",
                "schema": {"type": "integer", "minimum": 0},
            },
        ),
        extra_responses={
            "200": {
                "description": (
                    "With Accept: text/event-stream, an endless stream (session, reset?, then"
                    " each event as it is recorded); otherwise what is kept after `after`, once"
                ),
                "content": {
                    "text/event-stream": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/FeedSnapshot"}},
                },
            }
        },
    ),
)


def _frame(kind: str, data: JsonObject, seq: int | None = None) -> bytes:
    head = "" if seq is None else f"id: {seq}\n"
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


def build_feed_extension(service: CounterService) -> ApiExtension:
    feed = service.ledger.feed
    till_id = re.compile(ID)
    closing = asyncio.Event()

    def resume_from(request: web.Request) -> int | None:
        raw = request.query.get("after") or request.headers.get("Last-Event-ID")
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError("bad_request", "after / Last-Event-ID is a seq (a whole number)")
        return int(raw)

    async def till_feed(request: web.Request) -> web.StreamResponse:
        till = request.match_info["till"]
        if not till_id.match(till):
            raise ApiError("bad_request", "not a till id")
        if till not in service.known_tills:  # a path names a resource: an unknown one is 404
            raise ApiError(
                "not_found",
                f"unknown till {till!r}",
                details={"tills": list[JsonValue](sorted(service.known_tills))},
            )
        kiosk = request.get(KIOSK)
        if kiosk is not None and kiosk != till:
            raise ApiError("forbidden", f"a kiosk token hears only its own kiosk ({kiosk!r})")
        own_till(request, till)
        after = resume_from(request)
        if "text/event-stream" not in request.headers.get("Accept", ""):
            start = after if after is not None else feed.last_seq(till)
            kept = await feed.wait_after(till, start, 0)
            snapshot = FeedSnapshot(
                till=till,
                member_id=service.tills.member(till),
                mode=service.mode_now(),
                reset=after is not None and feed.gap(till, after) is not None,
                events=[FeedEvent(seq=e.seq, kind=e.kind, data=e.data) for e in kept],
            )
            return web.json_response(text=snapshot.model_dump_json())
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        member = service.tills.member(till)
        await resp.write(
            _frame("session", {"till": till, "member_id": member, "mode": service.mode_now()})
        )
        if after is None:
            after = feed.last_seq(till)
        else:
            gap = feed.gap(till, after)
            if gap is not None:
                await resp.write(_frame("reset", {"after": gap.after, "first_kept": gap.first}))
        last = after
        with contextlib.suppress(ConnectionResetError):
            while not closing.is_set():
                entries = await feed.wait_after(till, last, HEARTBEAT_S)
                if not entries and not closing.is_set():
                    await resp.write(b": keep-alive\n\n")
                for entry in entries:
                    await resp.write(_frame(entry.kind, entry.data, entry.seq))
                    last = entry.seq
        return resp

    async def shutdown(_app: web.Application) -> None:
        closing.set()
        await feed.wake()

    handlers: dict[str, Handler] = {"till_feed": till_feed}
    return ApiExtension(routes=ROUTES, handlers=handlers, on_shutdown=(shutdown,))
