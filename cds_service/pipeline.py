"""One CDS Hooks call after the protocol layer: resources in, response body out.

    build_facts(context, resources) -> evaluate(policy, facts, today) -> render(...)

The protocol layer (`api.py`) validates the request, resolves prefetch and calls
`run`. Everything here is pure apart from the injected clock and uuid factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CallContext:
    """What a service call needs besides the FHIR data."""

    service_id: str
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    now: datetime
    uuid_factory: Callable[[], str]


def run(call: CallContext, resources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Evaluate every anakinra draft order in the call and return the response body.

    Placeholder until the mapping, policy and card layers are wired in.
    """
    return {"cards": []}
