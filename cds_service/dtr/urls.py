"""Where a pack's documentation template lives. One convention shared by the questionnaire
endpoints, the cards that link to them and the coverage information that names them."""

from __future__ import annotations

FHIR_BASE_PATH = "/fhir"
PACKAGE_OPERATION = "$questionnaire-package"


def questionnaire_id(pack_id: str) -> str:
    """The Questionnaire's resource id: the pack id (already a valid FHIR id, e.g. NH.PHAR.244)."""
    return pack_id


def fhir_base(public_base_url: str) -> str:
    """The service's FHIR-style base: `<public base URL>/fhir`."""
    return f"{public_base_url.rstrip('/')}{FHIR_BASE_PATH}"


def questionnaire_url(public_base_url: str, pack_id: str) -> str:
    """The Questionnaire's canonical URL: `<public base URL>/fhir/Questionnaire/<pack id>`;
    the pack version goes in `Questionnaire.version` (canonical `url|version` when pinned)."""
    return f"{fhir_base(public_base_url)}/Questionnaire/{questionnaire_id(pack_id)}"


def package_url(public_base_url: str) -> str:
    """The `$questionnaire-package` operation:
    `<public base URL>/fhir/Questionnaire/$questionnaire-package`."""
    return f"{fhir_base(public_base_url)}/Questionnaire/{PACKAGE_OPERATION}"
