"""Code systems and codes the cards and the coverage-information extension use.

Da Vinci CRD version targeted: STU 2.1 (2.1.0). In that version every CRD code
(card types, coverage-information answers, detail codes) lives in the CRD
temporary code system below. STU 2.2 moves them to
`http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes` and
`http://terminology.hl7.org/CodeSystem/cdshooks-card-type` and adds a required
`category` to each `detail`; switching means changing the constants here and
adding that category in `coverage.py`.
"""

from __future__ import annotations

from typing import Final

CRD_TEMP: Final = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
COVERAGE_INFORMATION_URL: Final = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
)
ASSOCIATED_RESOURCE_KEY: Final = "davinci-crd.associated-resource"
"""Card extension key of the CRD associated-resource extension."""

EVALUATION_EXTENSION_KEY: Final = "com.anakinra-cds.evaluation"
"""Response-level extension key that carries one machine-readable evaluation per
order (see `serialize.evaluation_to_json`). Reverse-DNS style, as CDS Hooks asks
of extension keys; EHRs that do not know it ignore it."""

UCUM: Final = "http://unitsofmeasure.org"

# CRD card types (value set http://hl7.org/fhir/us/davinci-crd/ValueSet/cardType).
CARD_TYPES: Final[dict[str, str]] = {
    "coverage-info": "Coverage Information",
    "limits": "Limits",
    "contraindication": "Contraindication",
    "duplicate-therapy": "Duplicate Therapy",
    "therapy-alternatives-req": "Required Therapy Alternatives",
    "clinical-reminder": "Clinical Reminder",
    "off-guideline": "Off Guideline",
}


def topic(code: str) -> dict[str, str]:
    """A `source.topic` Coding for one CRD card type."""
    return {"system": CRD_TEMP, "code": code, "display": CARD_TYPES[code]}


# Our own override reasons. The system is configurable (CardSettings); the codes
# and displays are fixed here so that feedback can be counted per reason. A display
# may name `{product}`: the renderer fills it with the deciding pack's product name.
OVERRIDE_REASONS: Final[dict[str, str]] = {
    "documentation-on-file": "Documentation is in the chart and will be sent with the request",
    "prior-auth-in-place": "Prior authorization already requested or approved",
    "data-out-of-date": "The patient record shown is out of date or wrong",
    "clinically-justified": "Clinically justified: will request medical necessity review",
    "switching-therapy": "The other therapy is being stopped (switching to {product})",
    "benefit-outweighs-risk": "Benefit outweighs the risk for this patient",
    "patient-hospitalized": "Patient is hospitalized: the encounter shown is wrong",
}

OVERRIDE_SETS: Final[dict[str, tuple[str, ...]]] = {
    "documentation": ("documentation-on-file", "prior-auth-in-place", "data-out-of-date"),
    "dose": ("clinically-justified", "data-out-of-date", "prior-auth-in-place"),
    "combination": ("switching-therapy", "data-out-of-date", "benefit-outweighs-risk"),
    "hypersensitivity": ("data-out-of-date", "benefit-outweighs-risk"),
    "active-condition": ("data-out-of-date", "benefit-outweighs-risk"),
    "care-setting": ("patient-hospitalized", "data-out-of-date"),
    "not-met": ("clinically-justified", "data-out-of-date", "documentation-on-file"),
    "not-evaluated": ("prior-auth-in-place", "documentation-on-file"),
}
