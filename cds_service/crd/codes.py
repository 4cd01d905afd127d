"""Code systems of the coverage-information extension (Da Vinci CRD STU 2.2.1).

- `covered`, `pa-needed`, `doc-needed`, `doc-purpose`, `info-needed` and the detail
  categories are bare codes of the CRD CodeSystem coverage-information-codes (`valueCode`,
  no system in the instance); `OTH` is from v3 NullFlavor.
- Detail codes: THO `crd-coverage-detail` (the CRD temporary codes moved there in 2.2).
- Reason codes: the CRD value set coverageAssertionReasons, still in the CRD temporary code
  system in 2.2.1 (gold-card, no-member-found, no-active-coverage, coverage-not-found,
  auth-out-network, technical).
- Our own temporary code system holds what the IG has no code for yet: the outcome of each
  policy criterion (`criterion`).
"""

from __future__ import annotations

from typing import Final

COVERAGE_INFORMATION_URL: Final = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
)
CRD_TEMP: Final = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
COVERAGE_DETAIL: Final = "http://terminology.hl7.org/CodeSystem/crd-coverage-detail"
REASON_SYSTEM: Final = CRD_TEMP
OUR_DETAIL: Final = "https://anakinra-cds.example.org/fhir/CodeSystem/coverage-detail"
"""Temporary detail codes of this service, until the IG has one: `criterion` (the outcome
of one policy criterion: value met / not-met / unknown, qualification its reason)."""
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_REASON_CODES: Final = frozenset(
    {"gold-card", "no-member-found", "no-active-coverage", "coverage-not-found", "auth-out-network"}
)
"""The reason codes the IG maps to v3 ActReason (its `coverageAssertionReasonsNew` value
set, same codes; `technical` has none): sent beside the CRD code (prof-15)."""
BILLING_OPTIONS_URL: Final = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"
)
NDC: Final = "http://hl7.org/fhir/sid/ndc"
HCPCS: Final = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
"""As the IG's billing-code value set names it (https)."""

REASONS: Final[dict[str, str]] = {
    "technical": "Technical issues",
    "no-active-coverage": "Coverage not active",
    "coverage-not-found": "Coverage not found",
    "no-member-found": "Member not found",
}

DETAIL_DISPLAY: Final[dict[str, str]] = {
    "allowed-quantity": "Maximum quantity",
    "allowed-period": "Maximum allowed period",
    "policy-link": "Policy Link",
    "instructions": "Instructions",
}

__all__ = [
    "ACT_REASON",
    "ACT_REASON_CODES",
    "BILLING_OPTIONS_URL",
    "COVERAGE_DETAIL",
    "COVERAGE_INFORMATION_URL",
    "DETAIL_DISPLAY",
    "HCPCS",
    "NDC",
    "OUR_DETAIL",
    "REASONS",
    "REASON_SYSTEM",
]
