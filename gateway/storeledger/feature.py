"""The store ledger as a feature of the daemon: opened before the counter needs it, the
authority's server run beside the other loops, its state in ``status``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from core.events import JsonObject
from gateway.counter.reservations import Alone, Reservations
from gateway.feature import BaseFeature
from gateway.storeledger.book import HoldBook
from gateway.storeledger.client import AuthorityClient
from gateway.storeledger.config import StoreLedgerSection
from gateway.storeledger.reservations import AuthorityReservations, MemberReservations
from gateway.storeledger.server import AuthorityServer
from gateway.storeledger.tls import TlsIdentity

DB_FILE = "store-ledger.db"


class StoreLedger(BaseFeature):
    name = "store-ledger"

    def __init__(
        self,
        cfg: StoreLedgerSection,
        *,
        store_id: str,
        gateway_id: str,
        data_dir: Path,
        identity: TlsIdentity,
    ) -> None:
        self.cfg = cfg
        self.book: HoldBook | None = None
        self.server: AuthorityServer | None = None
        self.client: AuthorityClient | None = None
        self.reservations: Reservations = Alone()
        if cfg.role == "authority":
            assert cfg.listen is not None  # the section's validator
            self.book = HoldBook(data_dir / DB_FILE, retention_s=cfg.retention_days * 86400.0)
            self.server = AuthorityServer(
                self.book,
                store_id=store_id,
                listen=cfg.listen,
                identity=identity,
                peers=cfg.peers,
                gateway_id=gateway_id,
            )
            self.reservations = AuthorityReservations(self.book)
        elif cfg.role == "member":
            assert cfg.authority_url is not None
            assert cfg.authority_id is not None
            self.client = AuthorityClient(
                cfg.authority_url,
                store_id=store_id,
                authority_id=cfg.authority_id,
                identity=identity,
                timeout_s=cfg.timeout_s,
            )
            cap = cfg.unreserved_max_value if cfg.unreachable == "cap" else None
            self.reservations = MemberReservations(self.client, unreachable_cap=cap)

    def lifespan(self) -> AbstractAsyncContextManager[object]:
        return self._open()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if self.book is not None:
                await stack.enter_async_context(self.book)
            if self.client is not None:
                await stack.enter_async_context(self.client)
            reservations = self.reservations
            if isinstance(reservations, AuthorityReservations | MemberReservations):
                stack.push_async_callback(reservations.close)
            yield

    async def run(self) -> None:
        if self.server is not None:
            await self.server.serve()

    async def status(self) -> JsonObject:
        out: JsonObject = {"role": self.cfg.role}
        if self.book is not None:
            out["holds"] = await self.book.count()
            out["port"] = None if self.server is None else self.server.port
        if self.client is not None:
            out["authority"] = self.cfg.authority_url
            out["reachable"] = self.client.reachable
        return out
