#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server.
#
#   scripts/with-postgres.sh .venv/bin/python -m pytest tests/store -q
#
# Creates a cluster in a temporary folder, starts it on 127.0.0.1 at a free port
# (as the `postgres` user when run as root), exports
# CDS_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/cds_test,
# runs the command and always stops the server and removes the folder.
# Installs Debian's `postgresql` package only when no initdb can be found.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi

find_bindir() {
  local candidate
  if candidate=$(command -v initdb 2>/dev/null); then
    dirname "$(readlink -f "$candidate")"
    return 0
  fi
  candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
    echo "$candidate"
    return 0
  fi
  return 1
}

if ! BINDIR=$(find_bindir); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "initdb not found and not root: install PostgreSQL first" >&2
    exit 1
  fi
  echo "with-postgres: installing Debian's postgresql package" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BINDIR=$(find_bindir)
fi

RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  RUN_AS=(runuser -u postgres --)
fi

WORKDIR=$(mktemp -d -t cds-pg.XXXXXX)
chmod 755 "$WORKDIR"
mkdir -p "$WORKDIR/data" "$WORKDIR/socket"
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres: "$WORKDIR"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

cleanup() {
  "${RUN_AS[@]}" "$BINDIR/pg_ctl" -D "$WORKDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORKDIR"
}
trap cleanup EXIT

"${RUN_AS[@]}" "$BINDIR/initdb" -D "$WORKDIR/data" -U postgres --auth=trust -E UTF8 \
  --no-locale >/dev/null
"${RUN_AS[@]}" "$BINDIR/pg_ctl" -D "$WORKDIR/data" -l "$WORKDIR/server.log" -w \
  -o "-p $PORT -k $WORKDIR/socket -h 127.0.0.1" start >/dev/null
"${RUN_AS[@]}" "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U postgres cds_test

export CDS_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:${PORT}/cds_test"
echo "with-postgres: PostgreSQL on 127.0.0.1:${PORT}" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
