"""The CDS Hooks contract as data: service definitions and JSON Schemas under `hooks/`.

`load_catalog(hooks_dir)` reads every `services/*.json` file and the schemas, checks
them, and raises `HookFileError` listing every problem: the service refuses to start
on an invalid file rather than answer with a half-understood definition.

A service file is one service per hook, for every policy pack: its title, description
and usageRequirements may hold `{policies}` (each pack's id and title: "<id> <title>; ...") and
`{policy_titles}` (the titles: "<title>, ..."), filled at start-up by `for_packs` from the
packs loaded. Its `aliases` are older ids the service still answers (EHRs configured with
them keep working) but does not publish in discovery.

`for_packs` also compares the prefetch with what the packs read: every LOINC code of an
observation value set a pack's policy names (nested checks included) must be asked for by
an Observation query, and a value set with no code needs an Observation query by category.
A gap is logged as a warning at start-up (`prefetch-gap`): the service still starts, but
the EHR will not send that data, so those criteria come out unknown
(documentation-needed) instead of being decided.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from cds_service.crd.configuration import option_problems

if TYPE_CHECKING:
    from cds_service.policy.packs import Registry

log = logging.getLogger("cds_service.hooks")

SCHEMA_NAMES = ("request", "response", "feedback", "service-definition", "discovery")
SUPPORTED_HOOKS = frozenset({"order-sign", "order-select", "order-dispatch"})

TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
CONTEXT_TOKENS: Mapping[str, frozenset[str]] = {
    # Context fields of each hook that are plain strings (CDS Hooks 2.0.1 allows only
    # those in templates).
    "order-sign": frozenset({"userId", "patientId", "encounterId"}),
    "order-select": frozenset({"userId", "patientId", "encounterId"}),
    "order-dispatch": frozenset({"patientId", "performer"}),
}
USER_TOKENS = frozenset(
    {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
)
"""CDS Hooks 2.0.1 user tokens, taken from the type and id in `context.userId`."""

TEXT_FIELDS = ("title", "description", "usageRequirements")
"""Discovery texts that may name the policies of the loaded packs."""
PLACEHOLDERS = frozenset({"policies", "policy_titles"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")
PRIVATE_KEYS = frozenset({"requiredPrefetch", "aliases"})
"""Keys of a service file that are ours and are not published in discovery."""
LOINC = "http://loinc.org"


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
    aliases: tuple[str, ...] = ()
    """Older ids this service still answers; not published in discovery."""

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
    """By the id published in discovery."""
    schemas: Mapping[str, Mapping[str, Any]]
    validators: Mapping[str, Draft202012Validator]
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Older id -> the id of the service that answers it."""

    def discovery(self) -> dict[str, Any]:
        return {"services": [dict(self.services[key].discovery) for key in sorted(self.services)]}

    def service(self, service_id: str) -> ServiceDefinition | None:
        """The service answering `service_id`: its own id or one of its aliases."""
        return self.services.get(self.aliases.get(service_id, service_id))

    @property
    def ids(self) -> frozenset[str]:
        """Every id answered: published ids and aliases."""
        return frozenset(self.services) | frozenset(self.aliases)


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
    for text_field in TEXT_FIELDS:
        for name in _PLACEHOLDER.findall(str(data.get(text_field, ""))):
            if name not in PLACEHOLDERS:
                known = ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                problems.append(
                    f"{where} /{text_field}: unknown placeholder '{{{name}}}' ({known})"
                )
    problems.extend(f"{where}: {p}" for p in option_problems(data))
    discovery = {k: v for k, v in data.items() if k not in PRIVATE_KEYS}
    return ServiceDefinition(
        id=service_id,
        hook=hook,
        discovery=discovery,
        prefetch=dict(prefetch),
        required_prefetch=frozenset(required),
        source=path,
        aliases=tuple(str(alias) for alias in data.get("aliases") or ()),
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
    aliases: dict[str, str] = {}
    for service in services.values():
        for alias in service.aliases:
            if alias in services or alias in aliases:
                problems.append(
                    f"services/{service.source.name}: alias '{alias}' is already the id or "
                    "an alias of a service"
                )
                continue
            aliases[alias] = service.id
    if "discovery" in validators and services:
        catalog_preview = {"services": [dict(s.discovery) for s in services.values()]}
        for error in validators["discovery"].iter_errors(catalog_preview):
            problems.append(f"discovery: {error.message}")
    if problems:
        raise HookFileError(problems)
    return Catalog(
        services=services,
        schemas=schemas,
        validators=validators,
        aliases=MappingProxyType(aliases),
    )


# --- the policies of the loaded packs -------------------------------------------------


@dataclass(frozen=True)
class PolicyName:
    """How discovery names one loaded policy pack."""

    id: str
    title: str


def policy_texts(policies: Sequence[PolicyName]) -> dict[str, str]:
    """The values of the discovery placeholders for `policies` (in the order given)."""
    if not policies:
        return {"policies": "no policy loaded", "policy_titles": "no policy loaded"}
    return {
        "policies": "; ".join(f"{p.id} {p.title}" for p in policies),
        "policy_titles": ", ".join(p.title for p in policies),
    }


def fill_text(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def describe(catalog: Catalog, policies: Sequence[PolicyName]) -> Catalog:
    """`catalog` with its discovery texts naming `policies`."""
    values = policy_texts(policies)
    services = {
        key: replace(
            service,
            discovery={
                k: fill_text(v, values) if k in TEXT_FIELDS and isinstance(v, str) else v
                for k, v in service.discovery.items()
            },
        )
        for key, service in catalog.services.items()
    }
    return replace(catalog, services=services)


# --- what the prefetch asks for and what the packs read ------------------------------


@dataclass(frozen=True)
class ObservationNeed:
    """One observation value set a pack's policy names, with its LOINC codes (none: the
    value set is matched by the test's name only)."""

    pack: str
    valueset: str
    codes: frozenset[str]


def _query(template: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(template)
    return parts.path.split("/", 1)[0], parse_qs(parts.query)


def observation_queries(service: ServiceDefinition) -> tuple[frozenset[str], bool, bool]:
    """(LOINC codes asked for by code, whether some Observation query is not by code
    (category or everything), whether some Observation query asks for every one)."""
    codes: set[str] = set()
    uncoded = every = False
    for template in service.prefetch.values():
        resource_type, params = _query(template)
        if resource_type != "Observation" or "?" not in template:
            continue
        if "code" not in params:
            uncoded = True
            every = every or "category" not in params
            continue
        for value in ",".join(params["code"]).split(","):
            system, _, code = value.rpartition("|")
            if system in ("", LOINC):
                codes.add(code)
    return frozenset(codes), uncoded, every


def prefetch_gaps(service: ServiceDefinition, needs: Iterable[ObservationNeed]) -> list[str]:
    """What `needs` reads that the service's prefetch does not ask for, one line each."""
    asked, uncoded, every = observation_queries(service)
    if every:
        return []
    gaps = []
    for need in needs:
        missing = sorted(need.codes - asked)
        if missing:
            gaps.append(
                f"{service.id}: pack {need.pack} reads value set {need.valueset}, but no "
                f"Observation prefetch asks for LOINC {', '.join(missing)}"
            )
        elif not need.codes and not uncoded:
            gaps.append(
                f"{service.id}: pack {need.pack} reads value set {need.valueset} (no code: "
                "matched by name), but no Observation prefetch asks by category"
            )
    return gaps


def _loinc_codes(valueset: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(
        str(concept["code"])
        for concept in valueset.get("concepts") or ()
        if isinstance(concept, Mapping) and concept.get("system") == LOINC
    )


def observation_needs(registry: Registry) -> tuple[ObservationNeed, ...]:
    """Every observation value set some loaded pack's policy names (criteria, nested
    any-of / all-of checks, scales), with its LOINC codes."""
    import yaml

    from cds_service.policy.lint import valueset_uses
    from fhir_mappings.valuesets import VALUESET_DIR, valueset_kind, valueset_names

    known = valueset_names()
    needs: list[ObservationNeed] = []
    for pack in sorted(registry.packs.values(), key=lambda p: p.id):
        data = yaml.safe_load((pack.directory / "policy.yaml").read_text(encoding="utf-8"))
        names = sorted({name for _, name in valueset_uses(data)})
        for name in names:
            if name in known and valueset_kind(name) == "observation":
                file = json.loads((VALUESET_DIR / f"{name}.json").read_text(encoding="utf-8"))
                needs.append(ObservationNeed(pack.id, name, _loinc_codes(file)))
    return tuple(needs)


def policy_names(registry: Registry) -> tuple[PolicyName, ...]:
    """The loaded packs, longest-standing first (effective date, then id)."""
    packs = sorted(registry.packs.values(), key=lambda p: (p.effective, p.id))
    return tuple(PolicyName(p.id, p.title) for p in packs)


def for_packs(catalog: Catalog, registry: Registry) -> Catalog:
    """The catalog as published for the packs of `registry`: texts naming their policies;
    every prefetch gap is logged as a warning (see the module docstring)."""
    needs = observation_needs(registry)
    for service in catalog.services.values():
        for gap in prefetch_gaps(service, needs):
            log.warning(gap, extra={"event": "prefetch-gap"})
    return describe(catalog, policy_names(registry))
