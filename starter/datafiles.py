"""Data the project keeps in TOML files (the campaign calendar, personas), read and
checked with errors that say where: a file that cannot be read, is not TOML, or has an
entry at fault, named by its position and its ``name`` (``campaigns[1]
(summer-clearance).starts_at``)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_toml(
    path: Path, model: type[M], entries: str, what: str, whole: str, error: type[Exception]
) -> M:
    """``path`` as ``model``, whose ``entries`` list holds named entries; anything wrong
    raises ``error`` saying where (the file as a whole is ``whole``) and what."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot be read: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid TOML: {err}") from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        faults = "\n".join(f"  {where}: {why}" for where, why in _faults(err, data, entries, whole))
        raise error(f"{path}: not a valid {what}:\n{faults}") from None


def _faults(
    error: ValidationError, data: Mapping[str, Any], entries: str, whole: str
) -> Iterator[tuple[str, str]]:
    """(where, why) per error: an entry by its position and name, then the field; the
    file itself as ``whole``."""
    listed = data.get(entries)
    for fault in error.errors(include_url=False):
        location = list(fault["loc"])
        why = str(fault["msg"]).removeprefix("Value error, ")
        where = whole
        if len(location) >= 2 and location[0] == entries and isinstance(location[1], int):
            index = location[1]
            where = f"{entries}[{index}]"
            entry = listed[index] if isinstance(listed, list) else None
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                where += f" ({entry['name']})"
            location = location[2:]
        if location:
            rest = ".".join(str(part) for part in location)
            where = rest if where == whole else f"{where}.{rest}"
        yield where, why
