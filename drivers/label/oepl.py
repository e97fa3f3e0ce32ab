"""OpenEPaperLink access point backend: uploads, LED, tag records and tag types over HTTP.

The wire formats live in :mod:`drivers.label.oepl_codec`, the HTTP client (paging past 255
tags, request limit, backoff) in :mod:`drivers.label.oepl_client`. Tag MACs are 8 bytes written
as 16 upper-case hex characters; ``lastseen`` is Unix seconds; ``batteryMv`` 0 and 1337 (the
firmware's placeholder) mean unknown.

A tag's type comes from its record's ``hwType``: the AP's own ``/tagtypes/XX.json`` when it
serves one, else the table vendored from upstream (:mod:`drivers.label.tagtypes`).
"""

from __future__ import annotations

import asyncio
import logging

from PIL import Image

from core.events import JsonObject
from drivers.base import ActionFailed, BadInput, DeviceError
from drivers.label.backend import FlashRequest, LabelBackend, LabelHealth, PushReceipt
from drivers.label.config import LabelConfig, LabelSpec
from drivers.label.oepl_client import MAX_PAGES, TAG_COMMANDS, OeplClient
from drivers.label.oepl_codec import DbPage, OeplTag, led_pattern, parse_db_page
from drivers.label.render import to_jpeg
from drivers.label.tagtypes import TagType, UnsupportedTagType, lookup, parse_upstream

log = logging.getLogger(__name__)

FEW_RECORDS = 8
"""Follow up to this many labels with one ``get_db?mac=`` each; more with a full poll."""


class OeplBackend(LabelBackend):
    name = "oepl"
    can_poll = True
    max_concurrency = 32

    def __init__(self, config: LabelConfig) -> None:
        super().__init__(config)
        assert config.url is not None  # the config validator guarantees it for oepl
        self.client = OeplClient(
            config.url,
            device_id=config.id,
            timeout_s=config.request_timeout_s,
            max_requests=config.ap_max_requests,
            retries=config.ap_retries,
            backoff_s=config.ap_backoff_s,
        )
        self._hw_types: dict[str, int] = {}
        """label id -> hwType its record last reported."""
        self._types: dict[int, TagType] = {}

    async def open(self) -> None:
        await self.client.open()

    async def close(self) -> None:
        await self.client.close()

    async def push(self, label: LabelSpec, image: Image.Image) -> PushReceipt:
        jpeg = await asyncio.to_thread(to_jpeg, image)
        before = await self.client.get_tag(label.id)
        if before is None:  # the firmware would answer 400 "mac not found"
            raise ActionFailed(
                self.device_id, "unknown_tag", f"the AP does not know tag {label.id}"
            )
        self._remember(before)
        await self.client.upload_image(label.id, jpeg, dither=False)
        return PushReceipt(
            stage="ap",
            details={"bytes": len(jpeg), "format": "jpeg", "size": list(image.size)},
            baseline=before.health(),
        )

    async def flash(self, label: LabelSpec, request: FlashRequest) -> JsonObject:
        if request.pattern is not None and len(request.pattern) != 24:
            raise ActionFailed(
                self.device_id, "bad_pattern", "an OEPL LED pattern is 12 bytes (24 hex characters)"
            )
        tag_type = await self.tag_type(label)
        has_led = label.led if label.led is not None else (tag_type is None or tag_type.led)
        if not has_led:
            what = tag_type.describe() if tag_type is not None else "configured led = false"
            raise ActionFailed(self.device_id, "no_led", f"label {label.id} has no LED ({what})")
        pattern = request.pattern or led_pattern(request.color, request.duration_s)
        await self.client.led_flash(label.id, pattern.upper())
        return {"pattern": pattern.upper(), "stage": "ap"}

    async def status(self, label: LabelSpec) -> LabelHealth:
        tag = await self.client.get_tag(label.id)
        if tag is None:
            return LabelHealth(label=label.id, known=False)
        self._remember(tag)
        return tag.health()

    async def poll(self) -> dict[str, LabelHealth]:
        return await self.records(self.config.labels, full=True)

    async def records(
        self, labels: list[LabelSpec], *, full: bool = False
    ) -> dict[str, LabelHealth]:
        wanted = [label.id for label in labels]
        if not full and len(wanted) <= FEW_RECORDS:
            by_mac = await self.client.get_tags(wanted)
        else:
            paged, more = await self.client.get_paged_tags()
            by_mac = {tag.mac: tag for tag in paged}
            missing = [mac for mac in wanted if mac not in by_mac]
            if more and missing:  # past pos 255: the firmware cannot page there
                by_mac |= await self.client.get_tags(missing)
        out: dict[str, LabelHealth] = {}
        for mac in wanted:
            tag = by_mac.get(mac)
            if tag is not None:
                self._remember(tag)
            out[mac] = tag.health() if tag else LabelHealth(label=mac, known=False)
        return out

    async def tag_type(self, label: LabelSpec) -> TagType | None:
        """The tag's type from its hwType; None while the AP has no record of the tag."""
        hw_type = self._hw_types.get(label.id)
        if hw_type is None:
            tag = await self.client.get_tag(label.id)
            if tag is None or tag.hw_type is None:
                return None
            self._remember(tag)
            hw_type = tag.hw_type
        return await self._type_of(hw_type)

    async def _type_of(self, hw_type: int) -> TagType:
        cached = self._types.get(hw_type)
        if cached is not None:
            return cached
        try:
            served = await self.client.get_tagtype(hw_type)
        except DeviceError as exc:  # the vendored table is a fine answer; try the AP next time
            log.info(
                "AP tag type unavailable",
                extra={"device_id": self.device_id, "hw_type": hw_type, "reason": exc.reason},
            )
            served = None
        try:
            tag_type = parse_upstream(hw_type, served, source="ap") if served is not None else None
        except UnsupportedTagType as exc:
            raise BadInput(self.device_id, exc.code, exc.message) from exc
        tag_type = tag_type or lookup(hw_type)
        if tag_type is None:
            raise BadInput(
                self.device_id,
                "unsupported_tag_type",
                f"hwType 0x{hw_type:02X}: the AP serves no tag type file and upstream has no "
                "e-paper type we can draw",
            )
        self._types[hw_type] = tag_type
        return tag_type

    def _remember(self, tag: OeplTag) -> None:
        if tag.hw_type is not None:
            self._hw_types[tag.mac] = tag.hw_type


__all__ = [
    "MAX_PAGES",
    "TAG_COMMANDS",
    "DbPage",
    "OeplBackend",
    "OeplClient",
    "OeplTag",
    "led_pattern",
    "parse_db_page",
]
