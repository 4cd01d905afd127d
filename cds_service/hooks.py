"""The CDS Hooks contract as data: service definitions and JSON Schemas under `hooks/`.

`load_catalog(hooks_dir)` reads every `services/*.json` file and the schemas, checks
them, and raises `HookFileError` listing every problem: the service refuses to start
on an invalid file rather than answer with a half-understood definition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

SCHEMA_NAMES = ("request", "response", "feedback", "service-definition", "discovery")
SUPPORTED_HOOKS = frozenset({"order-sign", "order-select"})

TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
CONTEXT_TOKENS: Mapping[str, frozenset[str]] = {
    # Context fields of each hook that are plain strings (CDS Hooks 2.0.1 allows only
    # those in templates).
    "order-sign": frozenset({"userId", "patientId", "encounterId"}),
    "order-select": frozenset({"userId", "patientId", "encounterId"}),
}
USER_TOKENS = frozenset(
    {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
)
"""CDS Hooks 2.0.1 user tokens, taken from the type and id in `context.userId`."""


class HookFileError(Exception):
    """The hook files are invalid; `problems` lists every one found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid hook files:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    discovery: Mapping[str, Any]
    """The discovery entry exactly as published."""
    prefetch: Mapping[str, str]
    required_prefetch: frozenset[str]
    source: Path

    def resource_types(self, keys: Iterable[str]) -> frozenset[str]:
        """The resource types the prefetch templates of `keys` read
        ("AllergyIntolerance?patient=..." -> "AllergyIntolerance")."""
        return frozenset(
            self.prefetch[key].split("?", 1)[0].split("/", 1)[0]
            for key in keys
            if key in self.prefetch
        )


@dataclass(frozen=True)
class Catalog:
    services: Mapping[str, ServiceDefinition]
    schemas: Mapping[str, Mapping[str, Any]]
    validators: Mapping[str, Draft202012Validator]

    def discovery(self) -> dict[str, Any]:
        return {"services": [dict(self.services[key].discovery) for key in sorted(self.services)]}


def template_tokens(template: str) -> list[str]:
    return [match.group(1) for match in TOKEN.finditer(template)]


def _token_problems(hook: str, key: str, template: str) -> list[str]:
    problems = []
    allowed_context = CONTEXT_TOKENS.get(hook, frozenset())
    for token in template_tokens(template):
        if token in USER_TOKENS:
            continue
        if token.startswith("context.") and token.removeprefix("context.") in allowed_context:
            continue
        problems.append(f"prefetch '{key}' uses '{{{{{token}}}}}', not a {hook} template token")
    stray = TOKEN.sub("", template)
    if "{{" in stray or "}}" in stray:
        problems.append(f"prefetch '{key}' has unbalanced template braces")
    return problems


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name}: cannot read JSON ({exc})")
        return None


def _load_schemas(schema_dir: Path, problems: list[str]) -> dict[str, Mapping[str, Any]]:
    schemas: dict[str, Mapping[str, Any]] = {}
    for name in SCHEMA_NAMES:
        path = schema_dir / f"{name}.schema.json"
        if not path.is_file():
            problems.append(f"schemas/{path.name}: missing")
            continue
        schema = _read_json(path, problems)
        if not isinstance(schema, dict):
            if schema is not None:
                problems.append(f"schemas/{path.name}: not a JSON object")
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            problems.append(f"schemas/{path.name}: not a valid 2020-12 schema ({exc.message})")
            continue
        schemas[name] = schema
    return schemas


def _load_service(
    path: Path, validator: Draft202012Validator | None, problems: list[str]
) -> ServiceDefinition | None:
    data = _read_json(path, problems)
    if data is None:
        return None
    where = f"services/{path.name}"
    if validator is not None:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        for error in errors:
            pointer = "/" + "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{where} {pointer}: {error.message}")
        if errors:
            return None
    if not isinstance(data, dict):
        problems.append(f"{where}: not a JSON object")
        return None
    service_id = str(data.get("id", ""))
    hook = str(data.get("hook", ""))
    if service_id != path.stem:
        problems.append(f"{where}: id '{service_id}' does not match the file name")
    if hook not in SUPPORTED_HOOKS:
        problems.append(f"{where}: hook '{hook}' is not one this service implements")
    prefetch = data.get("prefetch") or {}
    if not isinstance(prefetch, dict) or not all(isinstance(v, str) for v in prefetch.values()):
        problems.append(f"{where}: prefetch must map keys to template strings")
        return None
    for key, template in prefetch.items():
        problems.extend(f"{where}: {p}" for p in _token_problems(hook, key, template))
    required = data.get("requiredPrefetch") or []
    for key in required:
        if key not in prefetch:
            problems.append(f"{where}: requiredPrefetch '{key}' is not a prefetch key")
    discovery = {k: v for k, v in data.items() if k != "requiredPrefetch"}
    return ServiceDefinition(
        id=service_id,
        hook=hook,
        discovery=discovery,
        prefetch=dict(prefetch),
        required_prefetch=frozenset(required),
        source=path,
    )


def load_catalog(hooks_dir: Path) -> Catalog:
    """Services and schemas from `hooks_dir`; raises `HookFileError` when anything is off."""
    problems: list[str] = []
    if not hooks_dir.is_dir():
        raise HookFileError([f"{hooks_dir}: hooks folder not found (set CDS_HOOKS_DIR)"])
    schemas = _load_schemas(hooks_dir / "schemas", problems)
    validators = {name: Draft202012Validator(schema) for name, schema in schemas.items()}
    services: dict[str, ServiceDefinition] = {}
    paths = sorted((hooks_dir / "services").glob("*.json"))
    if not paths:
        problems.append("services/: no service definition files")
    for path in paths:
        service = _load_service(path, validators.get("service-definition"), problems)
        if service is None:
            continue
        if service.id in services:
            problems.append(f"services/{path.name}: duplicate id '{service.id}'")
            continue
        services[service.id] = service
    if "discovery" in validators and services:
        catalog_preview = {"services": [dict(s.discovery) for s in services.values()]}
        for error in validators["discovery"].iter_errors(catalog_preview):
            problems.append(f"discovery: {error.message}")
    if problems:
        raise HookFileError(problems)
    return Catalog(services=services, schemas=schemas, validators=validators)
