"""Configuration of one electronic-shelf-label device: an OpenEPaperLink AP or a BLE adapter.

One ``[[devices]]`` entry with ``kind = "label"`` owns one access point (``backend = "oepl"``)
or one Bluetooth adapter (``backend = "ble"``) and lists the labels it serves::

    [[devices]]
    id = "esl-aisle-3"
    kind = "label"
    backend = "oepl"
    url = "http://192.168.1.50"

    [[devices.labels]]
    id = "0000021EDE3AB43C"     # OEPL tag MAC, 8 bytes as 16 hex characters
    panel = "2.9"               # optional for OEPL: a check against the tag's own type

An OEPL tag reports its ``hwType`` and the AP's tag type file gives its size, inks and LED
(:mod:`drivers.label.tagtypes`), so ``panel``, ``colors`` and ``led`` are only needed for BLE.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.base import DeviceConfig

Panel = Literal["2.13", "2.9", "4.2"]
"""Panel diagonal in inches. BLE labels are drawn at the renderer's size for it; for OEPL it is
checked against the tag's reported type (a mismatch is a health error naming both)."""

_OEPL_MAC = re.compile(r"^[0-9A-Fa-f]{16}$")
_BLE_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")


def is_oepl_mac(value: str) -> bool:
    return _OEPL_MAC.fullmatch(value) is not None


def is_ble_address(value: str) -> bool:
    return _BLE_ADDRESS.fullmatch(value) is not None


class LabelSpec(BaseModel):
    """One shelf label: its id on the backend, its panel and optional per-label settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """OEPL: tag MAC as 16 hex characters; BLE: the label's address (AA:BB:CC:DD:EE:FF)."""
    panel: Panel | None = None
    alias: str | None = Field(default=None, min_length=1, max_length=64)
    """A name people recognise (``aisle3-milk``); actions may address a label by it."""
    colors: Literal["bwr", "bw"] | None = None
    """BLE: ``bw`` panels have no red (promo prices drawn black); default ``bwr``. OEPL: the
    tag type's inks are used."""
    rotate: Literal[0, 180] = 0
    """180 for labels mounted upside down."""
    led: bool | None = None
    """Whether the label has an LED ``label.flash`` can blink; None: the tag type says (OEPL),
    yes (BLE)."""
    esl_id: int = Field(default=0, ge=0, le=0xFE)
    """BLE only: ESL id within its group (0xFF is the broadcast id and therefore refused)."""
    group_id: int = Field(default=0, ge=0, le=0x7F)
    """BLE only: ESL group (7 bits, as in the Bluetooth ESL address)."""

    @field_validator("id")
    @classmethod
    def _normalise_id(cls, value: str) -> str:
        value = value.strip()
        if is_oepl_mac(value) or is_ble_address(value):
            return value.upper()
        raise ValueError(
            "label id must be an OEPL tag MAC (16 hex characters, e.g. 0000021EDE3AB43C) "
            "or a BLE address (AA:BB:CC:DD:EE:FF)"
        )

    @property
    def esl_address(self) -> int:
        """The 15-bit ESL address: group id in the high 7 bits, ESL id in the low 8."""
        return (self.group_id << 8) | self.esl_id


def _ap_url(value: str) -> str:
    """An access point's base URL: the driver appends its API paths to it."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("url must be http://host[:port] (or https://)")
    if not parts.hostname:
        raise ValueError("url has no host")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"url has a bad port: {exc}") from None
    if parts.query or parts.fragment:
        raise ValueError("url must not have a query or fragment")
    return value.rstrip("/")


class LabelConfig(DeviceConfig):
    """An e-paper access point or BLE adapter with its labels."""

    kind: Literal["label"] = "label"
    backend: Literal["oepl", "ble"] = "oepl"
    url: str | None = None
    """oepl: the access point, ``http://host[:port]`` (https accepted for a reverse proxy)."""
    adapter: str = Field(default="hci0", pattern=r"^hci[0-9]{1,2}$")
    """ble: the BlueZ adapter."""
    labels: list[LabelSpec] = Field(default_factory=list)

    request_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """oepl: one HTTP request (an image upload to a busy AP can take a few seconds)."""
    poll_interval_s: float = Field(default=60.0, ge=0, le=86400)
    """oepl: how often label health is read from the AP (get_db); 0 turns polling off.
    ble: ignored, labels are only contacted for a push, a flash or label.status (battery)."""
    concurrency: int = Field(default=4, ge=1, le=32)
    """oepl: pushes in flight at once. ble always uses 1 (one radio, one connection)."""
    ap_max_requests: int = Field(default=2, ge=1, le=16)
    """oepl: HTTP requests in flight to the AP at once (an ESP32 serves few connections)."""
    ap_retries: int = Field(default=2, ge=0, le=10)
    ap_backoff_s: float = Field(default=0.5, gt=0, le=60)
    """oepl: a 409 or 5xx is retried this many times after a doubling, jittered pause during
    which no request goes to the AP."""
    delivery_timeout_s: float = Field(default=180.0, gt=0, le=86400)
    """oepl: how long after an upload a tag may take to pick it up before the push is reported
    ``queued_at_ap`` (tags check in about once a minute; a sleeping tag much later)."""
    delivery_poll_s: float = Field(default=5.0, gt=0, le=3600)
    """oepl: how often the tag records of uploads not yet picked up are read."""
    retry_min_s: float = Field(default=2.0, gt=0, le=3600)
    retry_max_s: float = Field(default=300.0, gt=0, le=86400)
    max_attempts: int = Field(default=30, ge=1, le=10000)
    """A push is reported failed and dropped after this many attempts."""

    locale: str | None = Field(default=None, pattern=r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
    """The store's locale (``zh_CN``, ``de_DE``, ``en_GB`` ...): money is written the way its
    shoppers read it (CLDR, via Babel). Without it, the two settings below apply."""
    decimal_separator: Literal[".", ","] = "."
    currency_position: Literal["prefix", "suffix"] = "prefix"
    """``€2.49`` (prefix) or ``2,49 €`` (suffix)."""

    ble_connect_timeout_s: float = Field(default=20.0, gt=0, le=120)
    ble_ack_timeout_s: float = Field(default=2.0, gt=0, le=60)
    ble_window: int = Field(default=4, ge=1, le=64)
    """Image chunks written before waiting for their acknowledgements."""
    ble_chunk_retries: int = Field(default=5, ge=0, le=100)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _ap_url(value)

    @model_validator(mode="after")
    def _check_backend(self) -> LabelConfig:
        if self.backend == "oepl" and self.url is None:
            raise ValueError("backend 'oepl' needs url (the access point, http://host[:port])")
        if self.backend == "ble" and self.url is not None:
            raise ValueError("url is for backend 'oepl'; backend 'ble' uses adapter")
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s must not exceed retry_max_s")
        seen_ids: set[str] = set()
        seen_aliases: set[str] = set()
        seen_esl: set[int] = set()
        for i, label in enumerate(self.labels):
            if self.backend == "oepl" and not is_oepl_mac(label.id):
                raise ValueError(
                    f"labels[{i}].id {label.id!r}: an OEPL tag MAC is 8 bytes as 16 hex characters"
                )
            if self.backend == "ble" and label.panel is None:
                raise ValueError(f"labels[{i}]: a BLE label needs panel (2.13, 2.9 or 4.2)")
            if self.backend == "ble" and not is_ble_address(label.id):
                raise ValueError(
                    f"labels[{i}].id {label.id!r}: a BLE label id is its address AA:BB:CC:DD:EE:FF"
                )
            if label.id in seen_ids:
                raise ValueError(f"labels[{i}].id {label.id!r} is used twice")
            seen_ids.add(label.id)
            if label.alias is not None:
                if label.alias in seen_aliases:
                    raise ValueError(f"labels[{i}].alias {label.alias!r} is used twice")
                seen_aliases.add(label.alias)
            if self.backend == "ble":
                if label.esl_address in seen_esl:
                    raise ValueError(
                        f"labels[{i}]: ESL address group {label.group_id} / id {label.esl_id} "
                        "is used twice"
                    )
                seen_esl.add(label.esl_address)
        return self

    def label(self, key: str) -> LabelSpec | None:
        """Find a label by id (any case) or alias."""
        wanted = key.strip()
        upper = wanted.upper()
        for label in self.labels:
            if label.id == upper or label.alias == wanted:
                return label
        return None


__all__ = ["LabelConfig", "LabelSpec", "Panel", "is_ble_address", "is_oepl_mac"]
