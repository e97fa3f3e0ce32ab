"""What the kiosk routes accept and answer, and the messages its WebSocket pushes.

The OpenAPI document is built from these models (like the counter's), so the page, the
document and the handlers agree by construction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.events import JsonObject
from core.identifiers import ID_PATTERN
from gateway.counter.model_base import ID, Mode


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- coupon offers ----------------------------------------------------------------------------


class ClaimRequest(_Request):
    """Claim a coupon the cloud offers (an entry of the member's ``offers``). ``claim_id``
    makes a retry safe: the same id gets the same coupon."""

    till: str = Field(pattern=ID)
    member_id: str = Field(pattern=ID)
    offer_id: str = Field(pattern=ID)
    claim_id: str | None = Field(default=None, pattern=ID)


class ClaimedCoupon(_Answer):
    coupon_id: str
    title: str
    value: Decimal
    currency: str
    expires: str
    token: str
    """The coupon as scanned text (``SGC1:...``): redeem it like any other coupon."""


class ClaimAnswer(_Answer):
    mode: Literal["online"]
    """Always online: only the cloud can issue a coupon."""
    claim_id: str
    offer_id: str
    member_id: str
    coupon: ClaimedCoupon


# --- appointments -----------------------------------------------------------------------------


class Appointment(_Answer):
    appointment_id: str
    member_id: str
    store_id: str
    starts_at: str
    service: str
    status: Literal["booked", "checked_in", "cancelled"]
    pending: bool = False
    """Checked in here while the cloud was unreachable; not confirmed by the cloud yet."""


class AppointmentsAnswer(_Answer):
    mode: Mode
    cached: bool
    """True when the list comes from the gateway's member cache (offline)."""
    member_id: str
    store_id: str
    """This store: only its ``booked`` appointments can be checked in here."""
    appointments: list[Appointment]


# --- the kiosk itself -------------------------------------------------------------------------


class Texts(_Request):
    """A text in both of the page's languages."""

    zh: str = Field(min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)


class KioskMessage(_Answer):
    message_id: str
    text: Texts
    sent_at: str
    expires_at: str | None
    """Until when a page that (re)connects still shows it; None: only pages open when sent."""


class KioskDevice(_Answer):
    device_id: str
    kind: str
    state: str
    """``available``, ``unavailable``, ``starting`` or ``disabled``."""


class KioskInfo(_Answer):
    kiosk: str
    client: str
    """The token's name (events of this kiosk's operations carry it as ``client``)."""
    store_id: str
    mode: Mode
    """Whether the gateway is connected to the cloud right now."""
    language: Literal["zh", "en"]
    idle_reset_s: float
    devices: list[KioskDevice]
    message: KioskMessage | None


class WsTicket(_Answer):
    ticket: str
    """Opens ``GET /v1/kiosk/ws?ticket=...`` once, within ``expires_in_s``."""
    expires_in_s: float


# --- the command from the cloud ---------------------------------------------------------------


class KioskMessageArgs(_Request):
    """``kiosk.message``: show a text on a kiosk's page (and on pages that connect within
    ``ttl_s``)."""

    kiosk: str = Field(pattern=ID_PATTERN)
    text: Texts
    message_id: str | None = Field(default=None, pattern=ID)
    ttl_s: float = Field(default=300.0, ge=0, le=86400)


class KioskMessageResult(_Answer):
    kiosk: str
    message_id: str
    delivered: int
    """Pages open now that were sent it."""
    expires_at: str | None


# --- WebSocket pushes -------------------------------------------------------------------------

Push = JsonObject
"""A JSON text frame with a ``type``: hello, scan, tap, device, mode or message."""


def push(kind: str, **fields: JsonValue) -> Push:
    return {"type": kind, **fields}
