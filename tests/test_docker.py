"""The docker/ stack, checked without a container engine (there is none on CI's machine):
the compose file parses and has the production shape; every ``EQUATOR_`` variable it
sets names a real setting and validates; every image is pinned; the Dockerfile builds a
non-root image with a health check. Each check is also run on a broken example, so that
a check that can no longer fail fails here."""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from runtime.credentials import hash_key, new_key
from runtime.settings import Settings
from service.api import router

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"

# What the operator fills in docker/.env, where .env.example leaves it blank.
FILLED_IN = {
    "TEMPORAL_DB_PASSWORD": "0123456789abcdef",
    "EQUATOR_DB_PASSWORD": "fedcba9876543210",
    "EQUATOR_INGEST__SOURCES": json.dumps(
        [{"name": "pos", "key_hashes": [hash_key(new_key())], "scopes": ["events:write"]}]
    ),
}
OBSERVABILITY = {"otel-collector", "jaeger", "prometheus"}
# A tag that names one release (1.32.0, v3.5.0, 3.11.14-slim-bookworm); or a digest.
RELEASE = re.compile(r"v?\d+\.\d+\.\d+([-+.][\w.-]+)?")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Images whose releases have two numbers: PostgreSQL's are MAJOR.MINOR (17.6).
TWO_NUMBER_RELEASES = {"postgres": re.compile(r"\d+\.\d+(-[\w.-]+)?")}


# --- Reading the files as Compose and Docker do ---------------------------------------


def dotenv(text: str) -> dict[str, str]:
    """A .env file as Compose reads it: KEY=value, quotes removed, comments skipped."""
    variables = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name.strip()] = value
    return variables


_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, through a parsed file."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        found, op, arg = variables.get(name), match.group("op"), match.group("arg")
        unset = found is None or (found == "" and op is not None and op.startswith(":"))
        if unset and op and op.endswith("?"):
            raise KeyError(f"${{{name}}} is required: {arg}")
        return (arg if unset and op else found) or ""

    return _VARIABLE.sub(substitute, value)


def compose(text: str | None = None) -> dict[str, Any]:
    """docker/compose.yaml (or ``text``) as Compose sees it with docker/.env.example
    filled in."""
    raw = yaml.safe_load(text if text is not None else (DOCKER / "compose.yaml").read_text())
    variables = dotenv((DOCKER / ".env.example").read_text())
    variables |= {name: FILLED_IN[name] for name, value in variables.items() if value == ""}
    result: dict[str, Any] = interpolate(raw, variables)
    return result


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's environment, from either of Compose's forms; None: passed through
    from where Compose runs, or unset."""
    given = service.get("environment") or {}
    if isinstance(given, list):
        pairs = (item.partition("=") for item in given)
        return {name: value if sep else None for name, sep, value in pairs}
    return {name: None if value is None else str(value) for name, value in given.items()}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = (line.strip() for line in joined.splitlines())
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]


def dockerfile() -> list[tuple[str, str]]:
    return instructions((DOCKER / "Dockerfile").read_text())


# --- The checks -----------------------------------------------------------------------


def unpinned(images: Iterable[str]) -> list[str]:
    def pinned(image: str) -> bool:
        name, _, digest = image.partition("@")
        if digest:
            return bool(DIGEST.fullmatch(digest))
        repository, colon, tag = name.rpartition(":")  # a registry's port has "/" after it
        release = TWO_NUMBER_RELEASES.get(repository, RELEASE)
        return bool(colon) and "/" not in tag and bool(release.fullmatch(tag))

    return [image for image in images if not pinned(image)]


def base_images(steps: Iterable[tuple[str, str]]) -> list[str]:
    """Each FROM's image; a FROM naming an earlier stage is not an image."""
    stages: set[str] = set()
    images = []
    for instruction, arguments in steps:
        if instruction != "FROM":
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
        if words[0] not in stages:
            images.append(words[0])
    return images


def _settings_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field nests (``X`` or ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [model for arg in typing.get_args(annotation) if (model := _settings_model(arg))]
        return models[0] if models else None
    return None


def unknown_setting(name: str) -> str | None:
    """Why ``name`` is not a setting (pydantic-settings ignores unknown ones: a typo
    would pass silently), or None. The path is walked field by field, ``__`` nesting;
    a dict field (``JOURNEY__PROGRAMMES__…``) takes any key below it."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("EQUATOR_").lower().split("__")
    for depth, part in enumerate(parts, start=1):
        field = model.model_fields.get(part)
        if field is None:
            return f"{name}: {model.__name__} has no {part!r}"
        if depth == len(parts) or typing.get_origin(field.annotation) is dict:
            return None
        nested = _settings_model(field.annotation)
        if nested is None:
            return f"{name}: {part!r} is not a group of settings"
        model = nested
    return None


def setting_problems(variables: Mapping[str, str | None]) -> list[str]:
    """Unknown ``EQUATOR_`` names, and the values as Settings would refuse them."""
    ours = {name: value for name, value in variables.items() if name.startswith("EQUATOR_")}
    problems = [problem for name in ours if (problem := unknown_setting(name))]
    process = {name: value for name, value in os.environ.items() if not name.startswith("EQUATOR_")}
    given = {name: value for name, value in ours.items() if value is not None}
    with mock.patch.dict(os.environ, process | given, clear=True):
        try:
            Settings()
        except ValidationError as err:
            problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
    return problems


def healthcheck(steps: Iterable[tuple[str, str]]) -> list[str]:
    """The image's health check command, exec form, without its options."""
    checks = [arguments for instruction, arguments in steps if instruction == "HEALTHCHECK"]
    command = re.sub(r"^(--\S+\s+)*", "", checks[-1])
    assert command.startswith("CMD ["), f"not an exec-form CMD: {command}"
    argv: list[str] = json.loads(command.removeprefix("CMD "))
    return argv


def image_problems(steps: list[tuple[str, str]]) -> list[str]:
    """What keeps the image from running as a service should: root, no health check."""
    problems = []
    users = [arguments for instruction, arguments in steps if instruction == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image runs as root (no USER, or USER root last)")
    checks = [arguments for instruction, arguments in steps if instruction == "HEALTHCHECK"]
    if not checks or checks[-1].upper() == "NONE" or "/readyz" not in checks[-1]:
        problems.append("no HEALTHCHECK on /readyz")
    return problems


# --- The stack ------------------------------------------------------------------------


def test_the_compose_file_has_the_production_stack() -> None:
    services = compose()["services"]
    assert set(services) == {
        "temporal-postgres", "temporal-schema", "temporal", "temporal-namespace",
        "temporal-ui", "postgres", "equator-setup", "worker", "api", "lb", *OBSERVABILITY,
    }  # fmt: skip
    # Temporal and Equator keep their data apart: two servers, two volumes.
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "temporal-postgres"
    password = FILLED_IN["EQUATOR_DB_PASSWORD"]
    assert environment(services["api"])["EQUATOR_DATABASE_URL"] == (
        f"postgresql+asyncpg://equator:{password}@postgres:5432/equator"
    )
    assert services["temporal-postgres"]["volumes"] != services["postgres"]["volumes"]
    # Temporal's schema is set up, then its namespace made, before anything else.
    assert services["temporal"]["depends_on"] == {
        "temporal-schema": {"condition": "service_completed_successfully"}
    }
    assert "temporal-sql-tool" in services["temporal-schema"]["command"][0]

    equator = {"equator-setup", "worker", "api"}
    for name in equator:
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert services[name]["image"] == services["api"]["image"]
    assert services["worker"]["command"] == ["worker"]
    assert services["api"]["command"] == ["api"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["api"]["deploy"]["replicas"] == 2
    # The project's own command registers the search attributes, before any worker.
    assert services["equator-setup"]["command"] == ["temporal", "setup"]
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["equator-setup"] == {
            "condition": "service_completed_successfully"
        }

    # Both API replicas behind one published port: the balancer's, and only its.
    published = {name for name, service in services.items() if "ports" in service}
    assert "api" not in published
    assert services["lb"]["ports"] == ["8000:8000"]
    assert (DOCKER / "Caddyfile").read_text().count("dynamic a api 8000") == 1

    for name, service in services.items():
        assert ("profiles" in service) == (name in OBSERVABILITY), name
        if name in OBSERVABILITY:
            assert service["profiles"] == ["observability"]


def test_health_checks_where_they_matter() -> None:
    services = compose()["services"]
    for name in ("temporal-postgres", "postgres", "temporal", "worker", "lb"):
        assert services[name]["healthcheck"]["test"], name
    # The API keeps the image's health check, on the route the API really serves.
    assert "healthcheck" not in services["api"]
    assert not image_problems(dockerfile())
    assert "/readyz" in {route.path for route in router.routes}  # type: ignore[attr-defined]
    # The balancer waits for ready replicas; a worker is alive when its metrics answer.
    assert services["lb"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert "9464/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["equator-setup"]["healthcheck"] == {"disable": True}


def test_every_equator_variable_names_a_real_setting_and_validates() -> None:
    for name, service in compose()["services"].items():
        assert not setting_problems(environment(service)), name
    worker = environment(compose()["services"]["worker"])
    # Traces pass through from docker/.env when the observability profile runs.
    assert worker["EQUATOR_TELEMETRY__OTLP_ENDPOINT"] is None
    assert "EQUATOR_TELEMETRY__OTLP_ENDPOINT" in (DOCKER / ".env.example").read_text()


def test_every_variable_the_compose_file_uses_is_in_the_example() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    used = {m.group("name") or m.group("bare") for m in _VARIABLE.finditer(text)} - {None}
    assert used <= set(dotenv((DOCKER / ".env.example").read_text()))


def test_every_mounted_file_is_in_docker() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).is_file(), f"{name} mounts {source}"


def test_every_image_is_pinned_to_a_release() -> None:
    services = compose()["services"]
    images = [service["image"] for service in services.values()]
    assert not unpinned(images)
    assert not unpinned(base_images(dockerfile()))
    # The stack's own image carries the project's version.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert services["api"]["image"] == f"equator:{version}"


def test_the_image_is_a_wheel_installed_as_non_root_with_a_health_check() -> None:
    steps = dockerfile()
    assert len(base_images(steps)) == 2  # a build stage, and the one that ships
    assert any(args.startswith("pip wheel") for step, args in steps if step == "RUN")
    assert ("ENTRYPOINT", '["equator"]') in steps
    assert not image_problems(steps)
    # Python, as the slim image has no curl (tests/test_topology.py runs it on an API).
    python, flag, code = healthcheck(steps)
    assert (python, flag) == ("python", "-c")
    compile(code, "HEALTHCHECK", "exec")
    # The files the commands read from the working directory, and nothing of the build.
    assert ("COPY", "campaigns.toml personas.toml ./") in steps
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1 :]  # everything is ignored but what is listed


# --- Each check can fail --------------------------------------------------------------


def test_the_checks_catch_what_they_are_there_for(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = ["postgres", "postgres:latest", "postgres:17", "caddy:2-alpine", "python:3.11-slim",
             "prom/prometheus:v3", "registry.example:5000/x", "x@sha256:abc"]  # fmt: skip
    assert unpinned(wrong) == wrong
    assert not unpinned(["postgres:17.6-bookworm", "prom/prometheus:v3.5.0", f"x@sha256:{'a' * 64}",
                         f"registry.example:5000/team/x:1.2.3@sha256:{'b' * 64}"])  # fmt: skip
    steps = instructions("FROM python:3.11 AS build\nFROM build\nFROM --platform=x b:1.0.0\n")
    assert base_images(steps) == ["python:3.11", "b:1.0.0"]

    assert setting_problems({"EQUATOR_TEMPORAL_ADRESS": "temporal:7233"}) == [
        "EQUATOR_TEMPORAL_ADRESS: Settings has no 'temporal_adress'"
    ]
    assert setting_problems({"EQUATOR_INGEST__PORTT": "8000"}) == [
        "EQUATOR_INGEST__PORTT: IngestSettings has no 'portt'"
    ]
    assert setting_problems({"EQUATOR_TASK_QUEUE__NAME": "q"}) == [
        "EQUATOR_TASK_QUEUE__NAME: 'task_queue' is not a group of settings"
    ]
    assert setting_problems({"EQUATOR_INGEST__PORT": "eighty"}) == [
        "ingest.port: Input should be a valid integer, unable to parse string as an integer"
    ]
    assert not setting_problems({"EQUATOR_JOURNEY__PROGRAMMES__WELCOME__DELAY": "P1D"})
    # The process's own EQUATOR_ variables do not leak into the check.
    monkeypatch.setenv("EQUATOR_INGEST__PORT", "eighty")
    assert not setting_problems({"EQUATOR_INGEST__HOST": "0.0.0.0"})

    assert image_problems(instructions("FROM python:3.11.14-slim\nUSER root\n")) == [
        "the image runs as root (no USER, or USER root last)",
        "no HEALTHCHECK on /readyz",
    ]
    assert image_problems(instructions("FROM x:1.0.0\nUSER 10001\nHEALTHCHECK NONE\n")) == [
        "no HEALTHCHECK on /readyz"
    ]

    with pytest.raises(KeyError, match="EQUATOR_DB_PASSWORD"):
        interpolate("${EQUATOR_DB_PASSWORD:?set it}", {"EQUATOR_DB_PASSWORD": ""})
    assert interpolate("$${X} ${Y:-d} ${Z-e} $W", {"Y": "", "Z": "", "W": "w"}) == "${X} d  w"
    broken = compose("services:\n  api:\n    environment: [EQUATOR_TEMPORAL_ADRESS=x, B]\n")
    assert environment(broken["services"]["api"]) == {"EQUATOR_TEMPORAL_ADRESS": "x", "B": None}
