"""What the admin channel's handlers share: their types, parsing a request's args into its
model (a ``bad_args`` refusal that names each field), and new ids."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from simulators.cloud.admin_models import AdminCode, AdminError
from simulators.cloud.store import Json

COMMAND_TIMEOUT_S = 10.0
"""How long an admin request waits for each gateway's command result."""

M = TypeVar("M", bound=BaseModel)
Later = Callable[[], Awaitable[Json]]
Handler = Callable[[dict[str, Any]], Awaitable[Json | Later]]
"""An answer, or (for what waits on gateways) the rest of the work, run in its own task."""


def short_id() -> str:
    """A random id part (new ids are time-ordered: their first characters repeat)."""
    return uuid.uuid4().hex[:12]


def parse(model: type[M], args: dict[str, Any]) -> M:
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        details = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise AdminError(AdminCode.BAD_ARGS, "invalid arguments", {"errors": details}) from None
