"""Where the service's own data files are: the hook files (service definitions, schemas,
example requests) in a source checkout and in an installed package.

A source checkout (and an editable install) keeps them in `hooks/` beside the package; a
wheel, a plain `pip install .` and the container image carry them inside the package, as
`cds_service/hooks_data/` (see `setup.py`). `CDS_HOOKS_DIR` overrides both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

PACKAGE_DIR: Final = Path(__file__).resolve().parent
PACKAGED_HOOKS_DIR: Final = PACKAGE_DIR / "hooks_data"
"""The hook files installed with the package (wheel, non-editable install, the image)."""
CHECKOUT_HOOKS_DIR: Final = PACKAGE_DIR.parent / "hooks"
"""The hook files of a source checkout (editable install, tests, `make run`)."""
TRUSTED_ISSUERS_SCHEMA: Final = Path("schemas") / "trusted-issuers.schema.json"


def _is_hooks_dir(folder: Path) -> bool:
    return (folder / "services").is_dir() and (folder / "schemas").is_dir()


def default_hooks_dir(cwd: Path | None = None) -> Path:
    """The installed hook files, else the checkout's, else `./hooks` (which may not exist:
    loading it then says to set `CDS_HOOKS_DIR`)."""
    for candidate in (PACKAGED_HOOKS_DIR, CHECKOUT_HOOKS_DIR):
        if _is_hooks_dir(candidate):
            return candidate
    return (cwd or Path.cwd()) / "hooks"


def trusted_issuers_schema(hooks_dir: Path | None = None) -> Path:
    """The trusted-issuers schema of `hooks_dir` (`CDS_HOOKS_DIR`) when it has one, else the
    one shipped with the service."""
    if hooks_dir is not None and (hooks_dir / TRUSTED_ISSUERS_SCHEMA).is_file():
        return hooks_dir / TRUSTED_ISSUERS_SCHEMA
    return default_hooks_dir() / TRUSTED_ISSUERS_SCHEMA
