"""Errors as RFC 9457 problem details: every refusal names the field and the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from workflows.events import located_errors, summarize

PROBLEM_MEDIA_TYPE = "application/problem+json"


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
