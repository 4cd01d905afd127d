#!/usr/bin/env bash
# Installs the FHIR sandbox's Node dependencies (pinned in package-lock.json) when missing.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/node ] || [ ! -d node_modules/@medplum/fhir-router ]; then
  npm ci --no-audit --no-fund
fi
