#!/usr/bin/env bash
# Regenerate constraints.txt: the exact versions of every runtime and test dependency, which
# `make run`, `make test` (and so CI) and the Dockerfile install with `pip install -c`.
#
#   scripts/update-constraints.sh          (or: make constraints)
#
# It installs the package with its `test` and `postgres` extras into a fresh temporary virtual
# environment, from the version ranges in pyproject.toml (the newest versions that fit), and
# writes what got installed. Review the diff, run `make test`, commit both together.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
venv="$(mktemp -d /tmp/cds-constraints-XXXXXX)"
trap 'rm -rf "$venv"' EXIT

echo "update-constraints: fresh environment in $venv ($("$PYTHON" --version))"
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --progress-bar on --upgrade pip
"$venv/bin/python" -m pip install --progress-bar on '.[test,postgres]'
{
    echo "# Exact versions of the runtime and test dependencies, used with 'pip install -c' by"
    echo "# 'make run', 'make test' (CI) and the Dockerfile. Made by scripts/update-constraints.sh"
    echo "# (make constraints) from pyproject.toml's ranges on $("$venv/bin/python" --version);"
    echo "# do not edit by hand. A package pyproject.toml lists must also be here."
    "$venv/bin/python" -m pip freeze --exclude anakinra-cds
} > constraints.txt
echo "update-constraints: wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
