"""The local API's OpenAPI 3.1 document, built from its route table (:mod:`.routes`).

The app registers exactly the routes listed here, and the schemas come from the pydantic
models the handlers validate with, so a route cannot exist undocumented and a documented
body cannot differ from the accepted one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway import __version__
from gateway.api.routes import AUTH_ERRORS, MAX_BODY_BYTES, ROUTES, Route
from gateway.counter.errors import HTTP_STATUS, CounterCode

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(HTTP_STATUS)},
                "message": {"type": "string"},
                "details": {},
            },
        },
        "mode": {"type": "string", "enum": ["online", "offline"]},
    },
}


def _responses(route: Route, refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.response is not None:
        schema = refs[(route.response, "serialization")]
        out["200"] = {"description": "done", "content": {"application/json": {"schema": schema}}}
    elif route.ok_response is not None:
        out["200"] = dict(route.ok_response)
    else:
        out["200"] = {
            "description": "the OpenAPI document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    out.update({status: dict(r) for status, r in (route.extra_responses or {}).items()})
    codes = (*AUTH_ERRORS, *route.errors) if route.auth else route.errors
    by_status: dict[int, list[str]] = {}
    for code in (*codes, "internal"):
        by_status.setdefault(HTTP_STATUS[CounterCode(code)], []).append(code)
    for status, names in sorted(by_status.items()):
        out[str(status)] = {
            "description": "error: " + ", ".join(names),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def build_openapi(
    routes: Sequence[Route] = ROUTES,
    security_schemes: Mapping[str, Any] | None = None,
    tills: Collection[str] | None = None,
) -> dict[str, Any]:
    """The document; with ``tills``, every request's ``till`` is one of them (the store's
    configuration), so a client reading the document knows which names are accepted."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for route in routes:
        if route.request is not None:
            models.append((route.request, "validation"))
        if route.response is not None:
            models.append((route.response, "serialization"))
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = {**defs.get("$defs", {}), "Error": _ERROR_SCHEMA}
    if tills is not None:
        for route in routes:
            if route.request is not None:
                _restrict_till(schemas.get(route.request.__name__, {}), tills)
    paths: dict[str, Any] = {}
    for route in routes:
        op: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "responses": _responses(route, refs),
        }
        if route.security is not None:
            op["security"] = [dict(s) for s in route.security]
        elif not route.auth:
            op["security"] = []
        if route.request is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.request, "validation")]}},
            }
        if "{member_id}" in route.path:
            op["parameters"] = [
                {
                    "name": "member_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,64}$"},
                }
            ]
        if route.parameters:
            op.setdefault("parameters", []).extend(dict(p) for p in route.parameters)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "storegw local API",
            "version": __version__,
            "description": (
                "Member services at the counter for POS software and kiosks. Every counter "
                "answer says mode: online (the cloud decided) or offline (the gateway did, "
                "to be reconciled). Request bodies are JSON, at most "
                f"{MAX_BODY_BYTES // 1024} KiB. Roles (a token's, from `storegw api token "
                "create`): pos, every counter route (with --till, only as that till), member "
                "answers list coupons and orders without their bearer token; kiosk (--kiosk), "
                "only the kiosk routes and identify, member, redeem, check-in, claim and "
                "appointments, as its own till and for "
                "the member identified at it; admin (--admin), what pos may, with coupon "
                "and pickup tokens."
            ),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                **(security_schemes or {}),
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _restrict_till(schema: dict[str, Any], tills: Collection[str]) -> None:
    till = schema.get("properties", {}).get("till")
    if till is None:
        return
    till.pop("pattern", None)
    if tills:
        till["enum"] = sorted(tills)
    else:
        till["not"] = {}  # no till configured: none is accepted
    till["description"] = "One of the store's configured tills ([counter] tills, devices, kiosks)."
