"""The admin requests for head office's online activity and its report: coupon offers, the
campaigns they belong to, appointments booked and stored value and packages sold online."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from simulators.cloud.admin_handlers import Handler, parse, short_id
from simulators.cloud.admin_models import (
    AdminCode,
    AdminError,
    AppointmentBookArgs,
    CampaignAddArgs,
    OfferAddArgs,
    ReportArgs,
    SaleArgs,
)
from simulators.cloud.reports import store_report
from simulators.cloud.store import Json

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService


class CampaignAdmin:
    """``report``, ``offer.*``, ``campaign.*``, ``appointment.book`` and ``sale.add``: the
    cloud's own data, answered at once."""

    def __init__(self, cloud: CloudService) -> None:
        self.cloud = cloud

    @property
    def handlers(self) -> dict[str, Handler]:
        return {
            "report": self._report,
            "offer.add": self._offer_add,
            "offer.list": self._offer_list,
            "campaign.add": self._campaign_add,
            "campaign.list": self._campaign_list,
            "appointment.book": self._appointment_book,
            "sale.add": self._sale_add,
        }

    async def _report(self, args: dict[str, Any]) -> Json:
        parsed = parse(ReportArgs, args)
        data = await store_report(self.cloud.store, parsed.store, parsed.since, parsed.until)
        return {"ok": True, "data": data}

    async def _offer_add(self, args: dict[str, Any]) -> Json:
        parsed = parse(OfferAddArgs, args)
        now = self.cloud.clock()
        starts = parsed.starts_at or now - timedelta(minutes=1)
        ends = parsed.ends_at or now + timedelta(days=30)
        if ends <= starts:
            raise AdminError(AdminCode.BAD_ARGS, "the offer must end after it starts")
        if parsed.campaign_id is not None:
            campaign = await self.cloud.campaigns.campaign(parsed.campaign_id)
            if campaign is None:
                raise AdminError(AdminCode.NOT_FOUND, f"no campaign {parsed.campaign_id}")
        await self.cloud.offers.add_offer(
            parsed.offer_id,
            parsed.title,
            parsed.value,
            valid_for=timedelta(days=parsed.valid_days),
            starts_at=starts,
            ends_at=ends,
            stores=tuple(parsed.stores),
            tiers=tuple(parsed.tiers),
            currency=parsed.currency,
        )
        if parsed.campaign_id is not None:
            await self.cloud.campaigns.add_offers(parsed.campaign_id, (parsed.offer_id,))
        return {"ok": True, "data": {"offer": await self.cloud.offers.describe(parsed.offer_id)}}

    async def _offer_list(self, args: dict[str, Any]) -> Json:
        if args:
            raise AdminError(AdminCode.BAD_ARGS, "offer.list takes no arguments")
        campaign_of = await self.cloud.campaigns.campaign_of_offer()
        offers = await self.cloud.offers.all()
        for offer in offers:
            offer["campaign_id"] = campaign_of.get(offer["offer_id"])
        return {"ok": True, "data": {"offers": offers}}

    async def _campaign_add(self, args: dict[str, Any]) -> Json:
        parsed = parse(CampaignAddArgs, args)
        starts = parsed.starts_at or self.cloud.clock()
        campaign = await self.cloud.campaigns.add_campaign(
            parsed.campaign_id,
            parsed.title,
            starts_at=starts,
            ends_at=parsed.ends_at or starts + timedelta(days=parsed.days),
            stores=tuple(parsed.stores),
            offers=tuple(parsed.offers),
        )
        return {"ok": True, "data": {"campaign": campaign}}

    async def _campaign_list(self, args: dict[str, Any]) -> Json:
        if args:
            raise AdminError(AdminCode.BAD_ARGS, "campaign.list takes no arguments")
        return {"ok": True, "data": {"campaigns": await self.cloud.campaigns.campaigns()}}

    async def _appointment_book(self, args: dict[str, Any]) -> Json:
        parsed = parse(AppointmentBookArgs, args)
        appointment = await self.cloud.campaigns.book_online(
            parsed.appointment_id or f"APT-{short_id().upper()}",
            parsed.member_id,
            parsed.store,
            parsed.starts_at,
            parsed.service,
            campaign_id=parsed.campaign_id,
            now=self.cloud.clock(),
        )
        return {"ok": True, "data": {"appointment": appointment}}

    async def _sale_add(self, args: dict[str, Any]) -> Json:
        parsed = parse(SaleArgs, args)
        sale = await self.cloud.campaigns.sell_online(
            parsed.sale_id or f"SALE-{short_id().upper()}",
            parsed.kind,
            parsed.member_id,
            parsed.store,
            parsed.amount,
            now=self.cloud.clock(),
            sessions=parsed.sessions,
            service=parsed.service,
            campaign_id=parsed.campaign_id,
        )
        return {"ok": True, "data": {"sale": sale}}
