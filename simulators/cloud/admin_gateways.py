"""Which gateways an admin request commands, and sending it to each: refused for a store or
gateway the cloud has not heard from, and unless every gateway applied it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from simulators.cloud.admin_handlers import COMMAND_TIMEOUT_S, Handler, Later
from simulators.cloud.admin_models import AdminCode, AdminError, Target
from simulators.cloud.store import Json

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService


class AdminGateways:
    """The gateways the cloud has heard from, as admin requests name and command them."""

    def __init__(self, cloud: CloudService) -> None:
        self.cloud = cloud

    @property
    def handlers(self) -> dict[str, Handler]:
        return {"gateways": self._gateways}

    def known(self) -> dict[str, list[str]]:
        """store -> the gateways the cloud has heard from (their status), sorted."""
        out: dict[str, list[str]] = {}
        for key in sorted(self.cloud.presence.status):
            store, _, gateway = key.partition("/")
            out.setdefault(store, []).append(gateway)
        return out

    def targets(self, target: Target) -> list[str]:
        known = self.known()
        gateways = known.get(target.store)
        if gateways is None:
            raise AdminError(
                AdminCode.UNKNOWN_STORE,
                f"no gateway of store {target.store} has been heard from",
                {"stores": sorted(known)},
            )
        if target.gateway is None:
            return gateways
        if target.gateway not in gateways:
            raise AdminError(
                AdminCode.UNKNOWN_GATEWAY,
                f"store {target.store} has no gateway {target.gateway}",
                {"gateways": gateways},
            )
        return [target.gateway]

    async def command_all(self, target: Target, send: Callable[[str], Awaitable[Json]]) -> Json:
        """Send to every target gateway; refused unless every one of them applied it."""
        results: list[Json] = []
        for gateway in self.targets(target):
            try:
                result = await send(gateway)
            except TimeoutError:
                result = {
                    "ok": False,
                    "error": {
                        "code": AdminCode.GATEWAY_TIMEOUT,
                        "message": f"no result within {COMMAND_TIMEOUT_S:g}s; the command "
                        "stays queued for the gateway until it expires",
                    },
                }
            except ConnectionError as exc:
                raise AdminError(AdminCode.NOT_CONNECTED, str(exc)) from None
            results.append({"gateway": gateway, **result})
        failed = [r for r in results if not r.get("ok")]
        if failed:
            first = failed[0].get("error") or {}
            code = first.get("code") if first.get("code") == AdminCode.GATEWAY_TIMEOUT else None
            raise AdminError(
                code or AdminCode.GATEWAY_REFUSED,
                f"{failed[0]['gateway']}: {first.get('message', 'refused')}",
                {"results": results},
            )
        return {"store": target.store, "results": results}

    def pushing(self, target: Target, send: Callable[[str], Awaitable[Json]], data: Json) -> Later:
        """The rest of a request that commands gateways: refused at once for an unknown store
        or gateway; later, ``data`` with each gateway's result (``pushed``)."""
        self.targets(target)

        async def push() -> Json:
            pushed = await self.command_all(target, send)
            return {"ok": True, "data": {**data, "pushed": pushed}}

        return push

    async def _gateways(self, args: dict[str, Any]) -> Json:
        return {"ok": True, "data": {"stores": self.known()}}
