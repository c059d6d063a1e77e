"""Errors as RFC 9457 problem details: every refusal names the field and the reason."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from workflows.events import located_errors, summarize

PROBLEM_MEDIA_TYPE = "application/problem+json"

M = TypeVar("M", bound=BaseModel)


class FieldError(BaseModel):
    # Dotted path into the request body, e.g. ``properties.amount`` or ``events.3.type``.
    field: str
    reason: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []


class ProblemError(Exception):
    """Raised anywhere in a request to answer with ``problem``."""

    def __init__(self, problem: Problem, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.headers = dict(headers or {})


def invalid(
    errors: Sequence[Mapping[str, Any]],
    title: str = "Invalid event",
    prefix: Sequence[str | int] = (),
) -> Problem:
    """A 422 naming every field at fault. FastAPI's ``body`` location part is dropped so
    that paths are the body's own."""
    unwrapped = [
        {**error, "loc": tuple(error["loc"])[1:]} if tuple(error["loc"])[:1] == ("body",) else error
        for error in errors
    ]
    located = located_errors(unwrapped, prefix)
    return Problem(
        title=title,
        status=422,
        detail=summarize(located),
        errors=[FieldError(field=field, reason=reason) for field, reason in located],
    )


def parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:
        problem = Problem(title="Malformed JSON", status=400, detail=f"the body is not JSON: {err}")
        raise ProblemError(problem) from None


def parse_body(model: type[M], body: bytes, title: str) -> M:
    """A request body, parsed by hand (after the caller is known): 400 for what is not
    JSON, 422 naming each field at fault."""
    try:
        return model.model_validate(parse_json(body))
    except ValidationError as err:
        raise ProblemError(invalid(err.errors(), title)) from None
