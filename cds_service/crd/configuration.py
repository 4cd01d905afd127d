"""CRD configuration options (CRD STU 2.2 "New hook configuration mechanism") and the CRD
version a service speaks.

Discovery: each service file under `hooks/services/` advertises, in its `extension`,
- `davinci-crd.configuration-options`: the options a client may set, each with `code` (a
  CRD card type where one applies), `type` (`boolean` or `integer`, JSON types), `name`,
  `description` and `default` (dev-4, dev-5: a boolean per card type the service returns);
- `davinci-crd.version`: the CRD versions the service speaks, as "major.minor" (dev-1).

Request: `extension["davinci-crd.configuration"]` is one object, option code -> value
(dev-12). What this module does with it (`read`):
- an option the service does not advertise is ignored (dev-16, dev-17), never an error;
- an advertised option with a value of another type is refused (`ConfigurationError`, a
  400 answer naming the option: hook-13 / hook-14 let a server answer 400 for every
  validation rule it checks); `null` means "not set";
- nothing is required (dev-15): an absent option takes its advertised default.
`extension["davinci-crd.requestedVersion"]` naming a version the service does not speak
is refused the same way (the IG's requestedVersion extension: "SHALL return an error").

Response (`apply`, dev-14): a boolean card-type option set to false removes every card
whose `source.topic` is that type; `coverage-info` set to false also removes the
coverage-information system actions. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from cds_service.cards.codes import COVERAGE_INFORMATION_URL
from cds_service.crd.types import COVERAGE_INFO

OPTIONS_KEY: Final = "davinci-crd.configuration-options"
VERSION_KEY: Final = "davinci-crd.version"
CONFIGURATION_KEY: Final = "davinci-crd.configuration"
REQUESTED_VERSION_KEY: Final = "davinci-crd.requestedVersion"

OptionType = Literal["boolean", "integer"]


@dataclass(frozen=True)
class Option:
    """One advertised configuration option."""

    code: str
    type: OptionType
    name: str
    description: str
    default: bool | int


@dataclass(frozen=True)
class Configuration:
    """The settings of one call: every advertised option with its value for the call."""

    values: Mapping[str, bool | int]
    ignored: tuple[str, ...] = ()
    """Option codes the client sent that the service does not advertise (ignored)."""

    def enabled(self, code: str) -> bool:
        """False only when an advertised boolean option `code` is off."""
        value = self.values.get(code, True)
        return value is not False

    @property
    def disabled_types(self) -> frozenset[str]:
        return frozenset(code for code, value in self.values.items() if value is False)


class ConfigurationError(Exception):
    """The CRD extensions of a request cannot be honoured; `pointer` names the field."""

    def __init__(self, message: str, pointer: str, error: str = "invalid-configuration") -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer
        self.error = error


def options_of(discovery: Mapping[str, Any]) -> tuple[Option, ...]:
    """The configuration options a service's discovery entry advertises."""
    extension = discovery.get("extension")
    raw = extension.get(OPTIONS_KEY) if isinstance(extension, Mapping) else None
    return tuple(
        Option(
            code=str(item["code"]),
            type="integer" if item["type"] == "integer" else "boolean",
            name=str(item["name"]),
            description=str(item["description"]),
            default=item["default"],
        )
        for item in raw or ()
        if isinstance(item, Mapping)
    )


def versions_of(discovery: Mapping[str, Any]) -> tuple[str, ...]:
    """The CRD versions ("2.2") a service's discovery entry declares."""
    extension = discovery.get("extension")
    raw = extension.get(VERSION_KEY) if isinstance(extension, Mapping) else None
    return tuple(str(v) for v in raw or ())


def _pointer(code: str) -> str:
    return f"/extension/{CONFIGURATION_KEY}/" + code.replace("~", "~0").replace("/", "~1")


def _has_type(value: Any, kind: OptionType) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, int) and not isinstance(value, bool)


def read(options: Sequence[Option], extension: Mapping[str, Any] | None) -> Configuration:
    """The call's configuration from the request `extension` (see the module docstring).
    Raises `ConfigurationError` for an advertised option sent with a value of another
    type."""
    values: dict[str, bool | int] = {option.code: option.default for option in options}
    sent = extension.get(CONFIGURATION_KEY) if isinstance(extension, Mapping) else None
    if sent is None:
        return Configuration(values=values)
    if not isinstance(sent, Mapping):
        raise ConfigurationError(
            f"{CONFIGURATION_KEY} must be an object of option codes and values",
            f"/extension/{CONFIGURATION_KEY}",
        )
    by_code = {option.code: option for option in options}
    ignored: list[str] = []
    for code, value in sent.items():
        option = by_code.get(code)
        if option is None:
            ignored.append(str(code))
            continue
        if value is None:
            continue
        if not _has_type(value, option.type):
            raise ConfigurationError(
                f"configuration option '{code}' must be a JSON {option.type}", _pointer(code)
            )
        values[code] = value
    return Configuration(values=values, ignored=tuple(ignored))


def check_version(versions: Sequence[str], extension: Mapping[str, Any] | None) -> None:
    """Raise `ConfigurationError` when the request asks for a CRD version the service does
    not speak (absent: the client takes the service's version)."""
    requested = extension.get(REQUESTED_VERSION_KEY) if isinstance(extension, Mapping) else None
    if requested is None or requested in versions:
        return
    spoken = ", ".join(versions) or "none"
    raise ConfigurationError(
        f"this service speaks CRD version {spoken} only",
        f"/extension/{REQUESTED_VERSION_KEY}",
        error="unsupported-crd-version",
    )


def _card_type(card: Mapping[str, Any]) -> str | None:
    source = card.get("source")
    topic = source.get("topic") if isinstance(source, Mapping) else None
    code = topic.get("code") if isinstance(topic, Mapping) else None
    return code if isinstance(code, str) else None


def is_coverage_information(action: Mapping[str, Any]) -> bool:
    """A system action that records coverage information on an order."""
    resource = action.get("resource")
    extensions = resource.get("extension") if isinstance(resource, Mapping) else None
    return any(
        isinstance(ext, Mapping) and ext.get("url") == COVERAGE_INFORMATION_URL
        for ext in extensions or ()
    )


def apply(response: Mapping[str, Any], config: Configuration) -> dict[str, Any]:
    """`response` without what `config` switches off (a new dict; `response` unchanged)."""
    off = config.disabled_types
    if not off:
        return dict(response)
    out = dict(response)
    out["cards"] = [card for card in response.get("cards", []) if _card_type(card) not in off]
    if COVERAGE_INFO in off and "systemActions" in response:
        actions = [a for a in response["systemActions"] if not is_coverage_information(a)]
        if actions:
            out["systemActions"] = actions
        else:
            del out["systemActions"]
    return out


def option_problems(discovery: Mapping[str, Any]) -> list[str]:
    """What breaks CRD's rules for the advertised options of one service (dev-8: codes,
    names and descriptions unique within the service), one line each."""
    problems = []
    options = options_of(discovery)
    for field in ("code", "name", "description"):
        seen: set[str] = set()
        for option in options:
            value = getattr(option, field)
            if value in seen:
                problems.append(f"configuration option {field} '{value}' is not unique")
            seen.add(value)
    return problems
