"""Configuration of the store's self-service kiosks (``[[kiosks]]`` in storegw.toml)::

    [[kiosks]]
    name = "kiosk-1"                      # also the till name its API requests use
    devices = ["kiosk-1-scanner", "kiosk-1-nfc"]
    language = "zh"                       # the page's first language: "zh" or "en"
    idle_reset_s = 60                     # back to the welcome screen after this idle time
    origins = ["https://gw-s001.local:8443"]  # where its browser loads the page from

``origins`` lists the origins (scheme://host[:port]) from which the kiosk's browser may open
its WebSocket; empty (the default) allows only the origin the request itself was addressed to,
i.e. the page the gateway served. A browser always sends ``Origin`` on a WebSocket handshake
(RFC 6455 section 4.1) and the server is the one to check it (section 10.2): without the check
any web page the kiosk's browser visits could open the socket with its cookies or ticket.

A kiosk's devices are ordinary ``[[devices]]`` entries without ``till``: their scans and taps
go to the kiosk's page over its WebSocket (and to the cloud as events, as always), and the
page identifies through the API. A device with ``till`` would also be handled by the counter
itself, which would use a member QR before the page could (a replay), so that is refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from yarl import URL

from core.identifiers import ID_PATTERN
from core.validation import distinct


def normal_origin(text: str) -> str | None:
    """``scheme://host[:port]`` lower-cased, the default port dropped; None if not an origin
    (``null``, a path, credentials, another scheme)."""
    try:
        url = URL(text)
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.host or url.user or url.query_string:
        return None
    if url.path not in ("", "/") or url.fragment:
        return None
    return str(url.origin())


class KioskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=ID_PATTERN)
    """A device's ``till`` rule: a kiosk's name is its till in counter requests."""
    devices: tuple[str, ...] = Field(default=(), max_length=16)
    """Ids of the ``[[devices]]`` whose scans and taps this kiosk's page receives."""
    language: Literal["zh", "en"] = "zh"
    idle_reset_s: float = Field(default=60.0, ge=10, le=3600)
    """The page forgets the member and shows the welcome screen after this long untouched."""
    origins: tuple[str, ...] = Field(default=(), max_length=16)
    """Origins its page may open the WebSocket from; empty: only the gateway's own."""

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for origin in value:
            normal = normal_origin(origin)
            if normal is None:
                raise ValueError(f"{origin!r} is not an origin like https://host:port")
            out.append(normal)
        return tuple(out)

    @field_validator("devices")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return distinct(value, "devices lists a device twice")


def kiosk_problems(
    kiosks: list[KioskConfig], device_tills: dict[str, str | None]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(key path, message) for every kiosk that names an unknown device, a device another
    kiosk has, a device serving a till, or a name a till already uses."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names: dict[str, int] = {}
    owner: dict[str, str] = {}
    tills = {t for t in device_tills.values() if t is not None}
    for i, kiosk in enumerate(kiosks):
        if kiosk.name in names:
            problems.append((("kiosks", i, "name"), f"kiosk {kiosk.name!r} is defined twice"))
        names.setdefault(kiosk.name, i)
        if kiosk.name in tills:
            problems.append(
                (
                    ("kiosks", i, "name"),
                    f"{kiosk.name!r} is also a device's till; a kiosk needs a name of its own",
                )
            )
        for j, device_id in enumerate(kiosk.devices):
            where = ("kiosks", i, "devices", j)
            if device_id not in device_tills:
                problems.append((where, f"no device has the id {device_id!r}"))
            elif device_tills[device_id] is not None:
                problems.append(
                    (
                        where,
                        f"device {device_id!r} serves till {device_tills[device_id]!r}; "
                        "a kiosk's device must not have a till",
                    )
                )
            elif device_id in owner:
                problems.append(
                    (where, f"device {device_id!r} already belongs to kiosk {owner[device_id]!r}")
                )
            else:
                owner[device_id] = kiosk.name
    return problems
