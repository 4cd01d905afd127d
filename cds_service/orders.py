"""Which draft orders of a call matter, and what each is for, from the order alone.

Read before any data is fetched (to skip calls about other drugs, and to know what to
read), and again after the mapping (to find the orders it passed over that the service
could not read). Pure: no I/O.

Which drugs are checked is the caller's: `drugs`, the ingredient names the policy packs
decide (`cds_service.policy.packs.Registry.ingredients`). Nothing here names a drug.

What a draft MedicationRequest is for (`MedicationKind`):
- `covered`: coded or named as a drug of `drugs` (some pack decides it);
- `other`: recognisably another drug: an RxNorm or NDC code, or a name (coding display,
  text, the reference's display, a contained Medication that names a drug);
- `unknown`: a `medicationReference` to a Medication that is not contained: its drug is
  known only once the data is read;
- `none`: no drug chosen yet (neither `medicationCodeableConcept` nor
  `medicationReference`, and no R5 `medication`);
- `unreadable`: the order gives a drug in a form the service cannot read: the FHIR R5
  `medication` element (a CodeableReference: `medication.concept` / `.reference`) that
  names neither another drug nor a covered one, a `medicationCodeableConcept` /
  `medicationReference` that is not an object, or codes only in code systems no drug can
  be told from (a local code, SNOMED CT) with no name.

An R5 order coded or named as a covered drug is `unreadable` too: the order is for that
drug, but its dose, supply and reasons are not read from an R5 resource, so it cannot be
checked. An R5 order recognisably for another drug is `other`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from fhir_mappings.medications import identify_concept
from fhir_mappings.valuesets import NDC, RXNORM, normalise_system

Drugs = Collection[str]
"""Ingredient names (value set names of the shared terminology) that a policy decides."""

MedicationKind = Literal["covered", "other", "unknown", "none", "unreadable"]

IDENTIFYING_SYSTEMS: Final = frozenset({RXNORM, NDC})
"""Code systems whose codes tell the drug without a name: a code from them that is not
a covered drug's is another drug. A code in any other system (a local code, SNOMED CT, whose
medicinal product lists are not kept here) tells nothing without a display or text."""

R5_SHAPE: Final = (
    "the order gives its drug in the FHIR R5 form (`medication.concept` or "
    "`medication.reference`); this service reads FHIR R4 orders "
    "(`medicationCodeableConcept` or `medicationReference`), so its drug, dose and "
    "supply could not be read and the policy could not be applied"
)
NO_MEDICATION: Final = (
    "the order names no drug (it has neither `medicationCodeableConcept` nor "
    "`medicationReference`), so the policy could not be applied"
)
MALFORMED_MEDICATION: Final = (
    "the order's drug could not be read (`medicationCodeableConcept` or "
    "`medicationReference` is not a FHIR object), so the policy could not be applied"
)
UNIDENTIFIABLE_CODES: Final = (
    "the drug of this order could not be identified: it is coded only in code systems the "
    "drug cannot be told from (not RxNorm or NDC) and carries no drug name, so the policy "
    "could not be applied"
)


@dataclass(frozen=True)
class DraftOrder:
    """One relevant draft MedicationRequest, with the reference the mapping gives it."""

    ref: str
    resource: Mapping[str, Any]


def draft_medication_requests(context: Mapping[str, Any], hook: str) -> Iterator[DraftOrder]:
    """The draft MedicationRequests of the call (for order-select: the selected ones).

    `ref` is `MedicationRequest/<id>`, or `draftOrders[<index>]` for an order without an
    id, as `fhir_mappings.build_facts` names it."""
    draft = context.get("draftOrders")
    entries = draft.get("entry") if isinstance(draft, Mapping) else None
    selections = context.get("selections")
    selected = (
        {s for s in selections if isinstance(s, str)} if isinstance(selections, list) else set()
    )
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "MedicationRequest":
            continue
        rid = resource.get("id")
        ref = (
            f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else f"draftOrders[{index}]"
        )
        if hook == "order-select" and ref not in selected:
            continue
        yield DraftOrder(ref, resource)


def _named(concept: Any) -> bool:
    """A concept with a drug name (coding display or text)."""
    if not isinstance(concept, Mapping):
        return False
    codings = concept.get("coding")
    if isinstance(codings, list) and any(
        isinstance(c, Mapping) and isinstance(c.get("display"), str) and c["display"].strip()
        for c in codings
    ):
        return True
    text = concept.get("text")
    return isinstance(text, str) and bool(text.strip())


def _identifying_code(concept: Any) -> bool:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return isinstance(codings, list) and any(
        isinstance(c, Mapping)
        and isinstance(c.get("code"), str)
        and c["code"].strip()
        and normalise_system(c.get("system") if isinstance(c.get("system"), str) else None)
        in IDENTIFYING_SYSTEMS
        for c in codings
    )


def _has_code(concept: Any) -> bool:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return isinstance(codings, list) and any(
        isinstance(c, Mapping) and isinstance(c.get("code"), str) and c["code"].strip()
        for c in codings
    )


def kind_of_concepts(concepts: Sequence[Any], drugs: Drugs) -> MedicationKind:
    """covered when any concept names a drug of `drugs`; other when some concept tells a
    drug (an identifying code or a name); unreadable when they carry codes no drug can be
    told from; none when they carry nothing at all."""
    if any(any(i.drug in drugs for i in identify_concept(c)) for c in concepts if c):
        return "covered"
    if any(_named(c) or _identifying_code(c) for c in concepts):
        return "other"
    if any(_has_code(c) for c in concepts):
        return "unreadable"
    return "none"


def _medication_kind(medication: Mapping[str, Any], drugs: Drugs) -> MedicationKind:
    """A Medication resource: its code and its ingredients' codes."""
    concepts: list[Any] = [medication.get("code")]
    ingredients = medication.get("ingredient")
    for ingredient in ingredients if isinstance(ingredients, list) else []:
        if isinstance(ingredient, Mapping):
            concepts.append(ingredient.get("itemCodeableConcept"))
            item = ingredient.get("itemReference")
            if isinstance(item, Mapping) and isinstance(item.get("display"), str):
                concepts.append({"text": item["display"]})
    return kind_of_concepts(concepts, drugs)


def _reference_kind(
    resource: Mapping[str, Any], reference: Mapping[str, Any], drugs: Drugs
) -> MedicationKind:
    """A `medicationReference`: its display, a contained Medication, else unknown."""
    display = reference.get("display")
    if (
        isinstance(display, str)
        and display.strip()
        and kind_of_concepts([{"text": display}], drugs) == "covered"
    ):
        return "covered"
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("#"):
        contained = resource.get("contained")
        for item in contained if isinstance(contained, list) else []:
            if (
                isinstance(item, Mapping)
                and item.get("resourceType") == "Medication"
                and item.get("id") == target[1:]
            ):
                found = _medication_kind(item, drugs)
                if found != "none":
                    return found
    if reference.get("reference") or reference.get("identifier"):
        return "unknown"  # the Medication, once read, tells (its display may be vague)
    if isinstance(display, str) and display.strip():
        return "other"
    return "none"


def _r5_kind(resource: Mapping[str, Any], medication: Any, drugs: Drugs) -> MedicationKind:
    """The R5 `medication` element (CodeableReference): another drug stays `other`;
    anything else (a covered drug included) is `unreadable`."""
    if not isinstance(medication, Mapping):
        return "unreadable"
    found: MedicationKind = "none"
    concept = medication.get("concept")
    if concept is not None:
        found = kind_of_concepts([concept], drugs)
    reference = medication.get("reference")
    if found in ("none", "unreadable") and isinstance(reference, Mapping):
        found = _reference_kind(resource, reference, drugs)
    return "other" if found == "other" else "unreadable"


def medication_kind(resource: Mapping[str, Any], drugs: Drugs) -> MedicationKind:
    """What a draft MedicationRequest is for (see the module docstring), from the order
    alone, before any data is read: a reference to a Medication that is not contained is
    `unknown` unless its display names a drug (the mapping tells it once the data is
    there, see `fhir_mappings.medications.unidentified_reason`)."""
    concept = resource.get("medicationCodeableConcept")
    reference = resource.get("medicationReference")
    if concept is None and reference is None:
        if "medication" in resource:
            return _r5_kind(resource, resource.get("medication"), drugs)
        return "none"
    if concept is not None:
        if not isinstance(concept, Mapping):
            return "unreadable"
        return kind_of_concepts([concept], drugs)
    if not isinstance(reference, Mapping):
        return "unreadable"
    return _reference_kind(resource, reference, drugs)


def unreadable_reason(resource: Mapping[str, Any], hook: str, drugs: Drugs) -> str | None:
    """Why a draft order that is not recognisably another drug cannot be checked at all,
    from the order alone; None when it can be read (or is another drug).

    An order with no drug yet is unreadable at order-sign and order-dispatch (the order
    is signed) but not at order-select, where the CDS Hooks sandbox and EHRs fire the hook before
    the prescriber has chosen a drug."""
    kind = medication_kind(resource, drugs)
    if kind == "none":
        return NO_MEDICATION if hook != "order-select" else None
    if kind != "unreadable":
        return None
    if (
        "medication" in resource
        and "medicationCodeableConcept" not in resource
        and "medicationReference" not in resource
    ):
        return R5_SHAPE
    concept = resource.get("medicationCodeableConcept", {})
    reference = resource.get("medicationReference", {})
    if not isinstance(concept, Mapping) or not isinstance(reference, Mapping):
        return MALFORMED_MEDICATION
    return UNIDENTIFIABLE_CODES


def named_drugs(concepts: Sequence[Any], drugs: Drugs) -> list[str]:
    """The drugs of `drugs` the concepts name, in the order found."""
    found: dict[str, None] = {}
    for concept in concepts:
        if concept:
            found.update((i.drug, None) for i in identify_concept(concept) if i.drug in drugs)
    return list(found)


def _order_concepts(resource: Mapping[str, Any]) -> list[Any]:
    """Every concept an order names its drug with: the code (R4 or R5), the reference's
    display, the code and ingredients of a contained Medication it refers to."""
    concepts: list[Any] = [resource.get("medicationCodeableConcept")]
    references: list[Any] = [resource.get("medicationReference")]
    medication = resource.get("medication")
    if isinstance(medication, Mapping):
        concepts.append(medication.get("concept"))
        references.append(medication.get("reference"))
    for reference in references:
        if not isinstance(reference, Mapping):
            continue
        display = reference.get("display")
        if isinstance(display, str) and display.strip():
            concepts.append({"text": display})
        target = reference.get("reference")
        contained = resource.get("contained")
        if isinstance(target, str) and target.startswith("#"):
            for item in contained if isinstance(contained, list) else []:
                if (
                    isinstance(item, Mapping)
                    and item.get("resourceType") == "Medication"
                    and item.get("id") == target[1:]
                ):
                    concepts.append(item.get("code"))
                    ingredients = item.get("ingredient")
                    for ing in ingredients if isinstance(ingredients, list) else []:
                        if isinstance(ing, Mapping):
                            concepts.append(ing.get("itemCodeableConcept"))
    return [c for c in concepts if isinstance(c, Mapping)]


def order_concepts(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every concept the order names its drug with (see `_order_concepts`)."""
    return _order_concepts(resource)


def covered_drug(resource: Mapping[str, Any], drugs: Drugs) -> str | None:
    """The drug of `drugs` the order names, in the R4 or the R5 form (code, name, the
    reference's display, a contained Medication); None when it names none."""
    found = named_drugs(_order_concepts(resource), drugs)
    return found[0] if found else None


def names_covered_drug(resource: Mapping[str, Any], drugs: Drugs) -> bool:
    """True when the order names a drug of `drugs`, in the R4 or the R5 form (code, name,
    the reference's display, a contained Medication)."""
    if medication_kind(resource, drugs) == "covered":
        return True
    medication = resource.get("medication")
    if not isinstance(medication, Mapping):
        return False
    reference = medication.get("reference")
    return kind_of_concepts([medication.get("concept")], drugs) == "covered" or (
        isinstance(reference, Mapping) and _reference_kind(resource, reference, drugs) == "covered"
    )


def needs_checking(context: Mapping[str, Any], hook: str, drugs: Drugs) -> bool:
    """True when some relevant draft order could be for a drug of `drugs`, or cannot be
    read.

    The call is skipped (no data read, `{"cards": []}`) only when every relevant order is
    recognisably another drug, or (at order-select) names no drug yet."""
    return any(
        medication_kind(order.resource, drugs) in ("covered", "unknown")
        or unreadable_reason(order.resource, hook, drugs) is not None
        for order in draft_medication_requests(context, hook)
    )


def needs_data(context: Mapping[str, Any], hook: str, drugs: Drugs) -> bool:
    """True when some relevant order is for a drug of `drugs` or can be told only from the
    data (a reference to a Medication that was not sent with it): only then is the chart
    read."""
    return any(
        medication_kind(order.resource, drugs) in ("covered", "unknown")
        for order in draft_medication_requests(context, hook)
    )


def covered_or_unknown(context: Mapping[str, Any], hook: str, drugs: Drugs) -> list[DraftOrder]:
    """The relevant orders that are for a drug of `drugs`, or whose drug the data would
    tell."""
    return [
        order
        for order in draft_medication_requests(context, hook)
        if medication_kind(order.resource, drugs) in ("covered", "unknown")
    ]


def medication_reads(context: Mapping[str, Any], hook: str) -> list[str]:
    """Medication references of relevant draft orders, to read when not sent (which of
    them can be read is `cds_service.prefetch.medication_target`'s decision)."""
    refs: list[str] = []
    for order in draft_medication_requests(context, hook):
        reference = order.resource.get("medicationReference")
        target = reference.get("reference") if isinstance(reference, Mapping) else None
        if isinstance(target, str):
            refs.append(target)
    return refs
