"""Everything the cloud side runs, for tests and demos: CA, broker, member and enrolment
services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from simulators.cloud.enrollment.broker import DeployedBroker
from simulators.cloud.enrollment.pki import CloudPki
from simulators.cloud.enrollment.service import Enrollment
from simulators.cloud.service import CloudService


@dataclass
class CloudStack:
    pki: CloudPki
    broker: DeployedBroker
    cloud: CloudService
    enrollment: Enrollment


@contextlib.asynccontextmanager
async def cloud_stack(
    workdir: Path,
    *,
    cert_valid_for: timedelta = timedelta(days=365),
    renewal: bool = True,
    **cloud_kwargs: Any,
) -> AsyncIterator[CloudStack]:
    """The CA, Mosquitto with deploy/mosquitto/, the member service as ``storegw-cloud`` over
    mTLS and the enrolment service (``cert.renew`` too unless ``renewal`` is False).

    The broker is killed on the way out, whatever happened inside.
    """
    pki = CloudPki.open(workdir / "cloud-pki")
    broker = DeployedBroker(pki, workdir / "broker")
    broker.start()
    try:
        enrollment = Enrollment(
            pki.directory, url=broker.url, broker_url=broker.url, cert_valid_for=cert_valid_for
        )
        async with CloudService(
            broker.url, workdir / "cloud.db", tls_context=pki.client_context(), **cloud_kwargs
        ) as cloud:
            if renewal:
                enrollment.attach(cloud)
            async with enrollment:
                yield CloudStack(pki, broker, cloud, enrollment)
    finally:
        broker.kill()
