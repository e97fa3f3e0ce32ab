"""The label actions' arguments, validated once at the driver's door."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.events import Action
from drivers.base import ActionFailed
from drivers.label.backend import FlashRequest
from drivers.label.content import ProductContent


class ShowArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1)
    """Label id or alias."""
    product: ProductContent


class FlashArgs(FlashRequest):
    label: str = Field(min_length=1)


class StatusArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str | None = None
    """One label (fresh from the backend), or every label (what the driver last knew)."""


ArgsT = TypeVar("ArgsT", bound=BaseModel)


def parse_args(device_id: str, model: type[ArgsT], action: Action) -> ArgsT:
    """``action.args`` as ``model``; every problem in one ``invalid_args`` error."""
    try:
        return model.model_validate(action.args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise ActionFailed(device_id, "invalid_args", problems) from None


__all__ = ["FlashArgs", "ShowArgs", "StatusArgs", "parse_args"]
