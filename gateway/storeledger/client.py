"""A member's side: holds asked of the store's ledger authority over mutual TLS.

Every failure to get an answer that can be trusted (refused connection, timeout, TLS failure,
a certificate naming anyone but the configured authority, a reply of the wrong shape) is one
error, :class:`~gateway.counter.reservations.AuthorityUnreachable`; "unreachable" is logged
once, and so is the recovery.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from pydantic import ValidationError

from core.lifecycle import AsyncResource
from gateway.counter.reservations import AuthorityUnreachable, Claim, Taken
from gateway.storeledger.tls import TlsIdentity, client_context, identity_name

log = logging.getLogger(__name__)


class AuthorityClient(AsyncResource):
    def __init__(
        self,
        url: str,
        *,
        store_id: str,
        authority_id: str,
        identity: TlsIdentity,
        timeout_s: float,
    ) -> None:
        self.url = url.rstrip("/")
        self.expected_name = identity_name(store_id, authority_id)
        """What the authority's certificate must name (its CN, checked by the handshake)."""
        self.identity = identity
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.reachable: bool | None = None
        """None until the first answer or failure; logged when it changes."""

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(ssl=client_context(self.identity), limit=32)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def hold(self, claim: Claim) -> None:
        """Granted, or raises :class:`Taken` / :class:`AuthorityUnreachable`."""
        status, body = await self._post("/v1/holds", claim)
        if status == 200 and body.get("granted") is True:
            return
        holder = _holder(body) if status == 409 else None
        if holder is not None:
            raise Taken(holder)
        raise self._down(f"the authority answered {status}")

    async def release(self, claim: Claim) -> None:
        status, _ = await self._post("/v1/holds/release", claim)
        if status != 200:
            raise self._down(f"the authority answered {status}")

    async def health(self) -> int:
        """The number of holds the authority keeps; raises :class:`AuthorityUnreachable`."""
        status, body = await self._request("GET", "/v1/health", None)
        holds = body.get("holds")
        if status != 200 or not isinstance(holds, int):
            raise self._down(f"the authority answered {status}")
        return holds

    async def _post(self, path: str, claim: Claim) -> tuple[int, dict[str, Any]]:
        return await self._request("POST", path, claim)

    async def _request(
        self, method: str, path: str, claim: Claim | None
    ) -> tuple[int, dict[str, Any]]:
        if self._session is None:
            raise AuthorityUnreachable("the store ledger client is not open")
        try:
            async with self._session.request(
                method,
                self.url + path,
                data=None if claim is None else claim.model_dump_json(),
                headers={"Content-Type": "application/json"},
                server_hostname=self.expected_name,
            ) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            raise self._down(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict):
            raise self._down("the authority's answer is not an object")
        self._up()
        return resp.status, body

    def _down(self, reason: str) -> AuthorityUnreachable:
        if self.reachable is not False:
            log.warning(
                "store ledger authority unreachable", extra={"url": self.url, "reason": reason}
            )
        self.reachable = False
        return AuthorityUnreachable(reason)

    def _up(self) -> None:
        if self.reachable is False:
            log.info("store ledger authority reachable again", extra={"url": self.url})
        self.reachable = True


def _holder(body: dict[str, Any]) -> Claim | None:
    try:
        return Claim.model_validate(body.get("holder"))
    except ValidationError:
        return None
