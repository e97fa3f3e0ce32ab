"""The cloud's enrolment: a CA, one-time claim tokens, certificate renewal, and the broker as
shipped; see :mod:`.service` for the threat model."""

from __future__ import annotations

from simulators.cloud.enrollment.broker import DeployedBroker, render_deploy_config
from simulators.cloud.enrollment.claims import Claim
from simulators.cloud.enrollment.pki import CLOUD_IDENTITY, CloudPki
from simulators.cloud.enrollment.service import RENEW_METHOD, Enrollment
from simulators.cloud.enrollment.stack import CloudStack, cloud_stack
from simulators.cloud.shipped import DEPLOY_DIR

__all__ = [
    "CLOUD_IDENTITY",
    "DEPLOY_DIR",
    "RENEW_METHOD",
    "Claim",
    "CloudPki",
    "CloudStack",
    "DeployedBroker",
    "Enrollment",
    "cloud_stack",
    "render_deploy_config",
]
