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

    def device_availability(self, device_id: str) -> str:
        """Retained ``online``/``offline`` of one device (gateway/availability.py)."""
        return f"{self.base}/devices/{device_id}/availability"

    @property
    def commands(self) -> str:
        """Every level below ``cmd/``: a name with a slash gets ``unknown_command``, not silence."""
        return f"{self.base}/cmd/#"

    def command_name(self, topic: str) -> str | None:
        head = f"{self.base}/cmd/"
        return topic[len(head) :] if topic.startswith(head) else None

    @property
    def command_results(self) -> str:
        """The default result topics are below this: ``{base}/cmd-result/{name}``."""
        return f"{self.base}/cmd-result"

    def command_result(self, name: str) -> str:
        return f"{self.command_results}/{name}"

    @property
    def command_replies(self) -> str:
        """Its own part of the cloud's reply inbox (storegw.acl: ``cloud/cmd-reply/%u/#``)."""
        return f"{self.prefix}/cloud/cmd-reply/{self.store_id}/{self.gateway_id}"

    def may_answer_to(self, topic: str) -> bool:
        """Whether a command's v5 response topic is inside this gateway's reply space.

        Only its own ``cmd-result/`` and its own part of the cloud's reply inbox: anything
        else (another store, ``$SYS``, the cloud's keys, its own ``cmd/``) is somebody's
        attempt to make the gateway publish where it should not.
        """
        if not topic or "+" in topic or "#" in topic or "\0" in topic:
            return False
        return any(
            topic == space or topic.startswith(f"{space}/")
            for space in (self.command_replies, self.command_results)
        )

    def rpc(self, method: str) -> str:
        return f"{self.base}/rpc/{method}"

    @property
    def cloud_keys(self) -> str:
        """The cloud's public signing keys (JWKS, retained), shared by every store."""
        return f"{self.prefix}/cloud/keys"

    @property
    def rpc_replies(self) -> str:
        return f"{self.base}/rpc-reply"

    # --- delivery (docs/delivery.md) -------------------------------------------------------

    @property
    def confirm(self) -> str:
        """The cloud's watermark for this gateway: every ``seq`` up to it is stored."""
        return f"{self.base}/confirm"

    @property
    def held(self) -> str:
        """The lowest ``seq`` this gateway still holds; nothing below it will come again."""
        return f"{self.base}/held"

    @property
    def cloud_state(self) -> str:
        """The cloud consumer's retained online/offline state (with its Will), for all."""
        return f"{self.prefix}/cloud/state"
