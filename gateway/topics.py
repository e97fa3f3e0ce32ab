"""The MQTT topic layout: the contract the cloud builds on (see docs/mqtt.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    store_id: str
    gateway_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.store_id}/{self.gateway_id}"

    def event(self, kind: str) -> str:
        return f"{self.base}/events/{kind}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def commands(self) -> str:
        return f"{self.base}/cmd/+"

    def command_name(self, topic: str) -> str | None:
        head = f"{self.base}/cmd/"
        return topic[len(head) :] if topic.startswith(head) else None

    def command_result(self, name: str) -> str:
        return f"{self.base}/cmd-result/{name}"

    def rpc(self, method: str) -> str:
        return f"{self.base}/rpc/{method}"

    @property
    def cloud_keys(self) -> str:
        """The cloud's public signing keys (JWKS, retained), shared by every store."""
        return f"{self.prefix}/cloud/keys"

    @property
    def rpc_replies(self) -> str:
        return f"{self.base}/rpc-reply"
