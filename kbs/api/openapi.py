"""/openapi.json: FastAPI's document, completed with what the routes read themselves.

JSON bodies are read by `deps.JsonBody` (see there why), so FastAPI does not know them: each route's JsonBody
dependency becomes its `requestBody`, the model's schema in `components`. FastAPI's 422 answers are dropped: a
request that fails validation is answered 400 with the error body, which every operation lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from .deps import JsonBody

__all__ = ["document"]

_REF = "#/components/schemas/{model}"
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _body_models(dependant: Dependant) -> Iterator[type[BaseModel]]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, JsonBody):
            yield sub.call.model
        yield from _body_models(sub)


def document(app: FastAPI, routers: Sequence[APIRouter]) -> dict[str, Any]:
    """The OpenAPI document of `app`, which serves `routers`, built once and cached on it."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute):
            continue
        models = list(_body_models(route.dependant))
        for method in route.methods or ():
            operation = spec["paths"][route.path_format][method.lower()]
            operation["responses"].pop("422", None)
            for model in models:
                schema = model.model_json_schema(by_alias=True, ref_template=_REF)
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
                }
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    app.openapi_schema = spec
    return spec
