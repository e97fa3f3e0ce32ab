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


DEFAULT_TOKEN = "default"


class TokenClient:
    """Calls the API at ``base`` as a test names the caller: ``token`` is a name of
    ``named_tokens()`` (``DEFAULT_TOKEN`` the first of them), a token itself, or None for none."""

    base: str
    http: aiohttp.ClientSession

    def named_tokens(self) -> dict[str, str]:
        raise NotImplementedError

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = DEFAULT_TOKEN,
        **kw: Any,
    ) -> tuple[int, Any]:
        """``kw`` are ``call_json``'s: ``raw``, ``headers``."""
        named = self.named_tokens()
        if token == DEFAULT_TOKEN:
            token = next(iter(named.values()))
        bearer = None if token is None else named.get(token, token)
        return await call_json(self.http, method, self.base + path, body, bearer=bearer, **kw)
