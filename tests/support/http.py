"""JSON over the gateway's local HTTP API, as a till or a kiosk page sends it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


async def call_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    bearer: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Status and JSON answer; ``raw`` is sent as is instead of ``body``. Every answer of the
    API is JSON, errors included: anything else fails the test."""
    hdrs = dict(headers or {})
    if bearer is not None:
        hdrs["Authorization"] = f"Bearer {bearer}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    async with http.request(method, url, data=data, headers=hdrs) as resp:
        assert resp.content_type == "application/json", f"{method} {url}: {resp.content_type}"
        return resp.status, await resp.json()
