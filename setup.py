"""Packaging details pyproject.toml cannot say: the hook files (`hooks/`: service
definitions, schemas, example requests) are installed inside the package, as
`cds_service/hooks_data/`, so a wheel or a non-editable install (the container image) finds
them without the source checkout (`cds_service/resources.py`)."""

from setuptools import find_packages, setup

HOOKS_PACKAGES = [
    "cds_service.hooks_data",
    "cds_service.hooks_data.examples",
    "cds_service.hooks_data.schemas",
    "cds_service.hooks_data.services",
]
"""Folders of data, no Python: listed so that setuptools installs their files (pyproject.toml
`package-data` names which)."""

setup(
    packages=[
        *find_packages(include=["cds_service*", "fhir_mappings*"]),
        *HOOKS_PACKAGES,
    ],
    package_dir={"cds_service.hooks_data": "hooks"},
)
