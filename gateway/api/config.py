"""The ``[api]`` section, beside the server it configures; gateway.config assembles it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ApiSection(BaseModel):
    """The local HTTP API for POS software and kiosks; off unless ``listen`` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    listen: str | None = Field(default=None, pattern=r"^[^:]+:\d{1,5}$")
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _check_tls(self) -> ApiSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self
