"""Code systems and codes the cards use.

Card types (`topic`) still use the CRD temporary code system. The coverage-information
extension follows CRD STU 2.2.1: its codes live in `cds_service/crd/codes.py`.
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

# CRD card types (card.source.topic): cds_service.crd.types.

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
