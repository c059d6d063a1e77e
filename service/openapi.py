"""The OpenAPI document: request bodies are parsed by hand (see ``service/api.py``), so
their schemas are added here, generated from the same pydantic models that validate them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter

from activities.signatures import SIGNATURE_HEADER
from service.api_models import ITEMS_MARKER

REF = "#/components/schemas/{model}"


def document_body(schema: str, signed: bool = False, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is the component ``schema``."""
    extra: dict[str, Any] = {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}},
        }
    }
    if signed:
        extra["parameters"] = [
            {
                "name": SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'>",
                "schema": {"type": "string"},
            }
        ]
    return extra


def install_openapi(app: FastAPI, bodies: Mapping[str, type[BaseModel] | TypeAdapter[Any]]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, model in bodies.items():
                adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
                schema = adapter.json_schema(ref_template=REF)
                for nested, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(nested, definition)
                for field in schema.get("properties", {}).values():
                    if item := field.pop(ITEMS_MARKER, None):
                        field["items"] = {"$ref": REF.format(model=item)}
                schemas[name] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
