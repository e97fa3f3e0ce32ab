"""The cloud simulator's admin channel as a peer on the broker sees it: answered on the
request's response topic with its correlation data, typed refusals, and never an answer
outside ``cloud/admin-reply/`` (a request cannot make the cloud write into a gateway's topics)."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.cloud import CloudService
from simulators.cloud.admin_client import AdminClient
from simulators.cloud.admin_models import AdminError
from tests.support.mqtt import Observer
from tests.support.waiting import wait_for


async def refusal(admin: AdminClient, method: str, args: dict[str, object]) -> AdminError:
    with pytest.raises(AdminError) as err:
        await admin.call(method, args)
    return err.value


async def test_requests_are_answered_and_refused_by_type(
    cloud: CloudService, observer: Observer
) -> None:
    async with AdminClient(cloud.url) as admin:
        unknown = await refusal(admin, "prices.nuke", {})
        assert unknown.code == "unknown_method"
        assert isinstance(unknown.details, dict)
        assert "price.set" in unknown.details["methods"]
        bad = await refusal(admin, "price.set", {"sku": "4006381333931", "price": "-1"})
        assert (bad.code, bad.message) == ("bad_args", "invalid arguments")
        assert isinstance(bad.details, dict)
        assert bad.details["errors"][0]["loc"] == "price"
        extra = await refusal(admin, "price.list", {"all": True})
        assert extra.code == "bad_args"
        report = await refusal(
            admin, "report", {"store": "S001", "from": "2026-12-06T10:00:00Z", "to": "2026-12-06"}
        )
        assert report.code == "bad_args"  # a time without its zone
        stores = await admin.call("gateways")
        assert stores == {"stores": {}}  # no gateway heard from yet

        # a request whose response topic is a gateway's command topic: not run, not answered
        gateway_topic = "storegw/v1/S001/gw-1/cmd/prices.update"
        await observer.subscribed.wait()
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = gateway_topic
        props.CorrelationData = b"c-1"
        body = b'{"id": "r-1", "args": {"sku": "4006381333931", "price": "0.01"}}'
        await observer.publish("storegw/v1/cloud/admin/price.set", body, properties=props)
        # handled in arrival order: once a later request is answered, the first was handled
        listed = await admin.call("price.list")
    pen = next(i for i in listed["items"] if i["sku"] == "4006381333931")
    assert pen["price"] == "1.49"  # not changed
    await wait_for(
        lambda: any(t.endswith("/cloud/admin/price.set") for t, _, _ in observer.messages),
        message="the observer saw the request",
    )
    assert [t for t, _, _ in observer.messages if t == gateway_topic] == []
