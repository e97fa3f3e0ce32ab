"""The member services a gateway runs, built from its config: the store's ledger (a store of
several gateways), the counter, and with ``[api] listen`` the local API and its kiosks.

aiohttp and the store LAN's TLS are imported only when configured: a gateway without the API
starts without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Config
from gateway.counter.feature import Counter
from gateway.counter.ledger import Submit
from gateway.counter.service import CounterService
from gateway.feature import Feature
from gateway.pricing import PricingService
from gateway.rpc import RpcClient
from gateway.supervisor import DeviceSupervisor
from gateway.wire.topics import Topics

if TYPE_CHECKING:
    from gateway.api.app import ApiServer
    from gateway.kiosk.service import KioskService
    from gateway.storeledger.feature import StoreLedger


@dataclass
class MemberServices:
    counter: CounterService | None = None
    store_ledger: StoreLedger | None = None
    kiosks: KioskService | None = None
    """Self-service kiosks (their pages, sockets, ``kiosk.message``); with the API only."""
    api: ApiServer | None = None
    features: list[Feature] = field(default_factory=list)
    """In the order they start: the store's ledger before the counter that reserves with it."""


def member_services(
    config: Config,
    *,
    ledger_path: Path,
    rpc: RpcClient,
    submit: Submit,
    topics: Topics,
    devices: Mapping[str, DeviceSupervisor],
    pricing: PricingService,
    when_back: Callable[[Callable[[], None]], None],
) -> MemberServices:
    out = MemberServices()
    if not config.counter.enabled:
        return out
    g = config.gateway
    if config.store_ledger.role != "alone":
        out.store_ledger = _store_ledger(config)
        out.features.append(out.store_ledger)
    out.counter = CounterService(
        config.counter,
        store_id=g.store_id,
        data_dir=g.data_dir,
        ledger_path=ledger_path,  # one transaction for a ledger row and its event
        rpc=rpc,
        submit=submit,
        durability=config.outbox.durability,
        tills=config.tills(),
        gateway_id=g.gateway_id,
        reservations=out.store_ledger.reservations if out.store_ledger else None,
    )
    when_back(out.counter.reconciler.trigger)
    tills = {d.id: d.till for d in config.devices if d.till is not None}
    out.features.append(Counter(out.counter, keys_topic=topics.cloud_keys, tills=tills))
    if config.api.listen is not None:
        out.kiosks, out.api = _api(config, out.counter, devices, pricing)
        out.features.append(out.kiosks)
    return out


def _store_ledger(config: Config) -> StoreLedger:
    from gateway.storeledger.feature import StoreLedger

    identity = config.store_ledger_identity()
    assert identity is not None  # Config's validator
    g = config.gateway
    return StoreLedger(
        config.store_ledger,
        store_id=g.store_id,
        gateway_id=g.gateway_id,
        data_dir=g.data_dir,
        identity=identity,
    )


def _api(
    config: Config,
    counter: CounterService,
    devices: Mapping[str, DeviceSupervisor],
    pricing: PricingService,
) -> tuple[KioskService, ApiServer]:
    """The local API (served beside the features) and its kiosks."""
    from gateway.api.app import ApiServer
    from gateway.api.auth import TokenStore
    from gateway.api.kiosk.handlers import build_extension
    from gateway.api.prices import build_prices_extension
    from gateway.api.till_feed import build_feed_extension
    from gateway.kiosk.service import KioskService

    g = config.gateway
    tokens = TokenStore(g.data_dir / "api-tokens.db")
    kiosks = KioskService(
        config.kiosks, store_id=g.store_id, counter=counter, devices=devices, tokens=tokens
    )
    extensions = [
        build_extension(kiosks),
        build_prices_extension(pricing),
        build_feed_extension(counter),
    ]
    return kiosks, ApiServer(config.api, counter, tokens, extensions)
