#!/usr/bin/env bash
# Build every image docker-compose.yml needs on a machine that reaches no image registry
# (only a Debian package mirror and the Python / npm package indexes):
#
#   scripts/docker-offline-images.sh
#   docker compose --env-file deploy/offline.env up -d --build
#
# 1. the base image (anakinra-cds-base:bookworm, scripts/docker-base-image.sh: debootstrap),
#    unless it is already there (REBUILD_BASE=1 makes it again);
# 2. stand-ins for the official PostgreSQL and nginx images from Debian's own packages
#    (deploy/postgres.Dockerfile, deploy/nginx.Dockerfile), named as deploy/offline.env says.
# The service and the FHIR sandbox images are then built by `docker compose ... --build` on
# that base. Where registries are reached, none of this is needed: `docker compose up --build`.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
env_file="$here/deploy/offline.env"
die() { echo "docker-offline-images: $*" >&2; exit 1; }
setting() { sed -n "s/^$1=//p" "$env_file"; }

command -v docker >/dev/null || die "the docker client is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd first)"

base="$(setting BASE_IMAGE)"
postgres="$(setting POSTGRES_IMAGE)"
proxy="$(setting PROXY_IMAGE)"
[ -n "$base" ] && [ -n "$postgres" ] && [ -n "$proxy" ] || die "$env_file names no images"

if [ "${REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$base" >/dev/null 2>&1; then
    "$here/scripts/docker-base-image.sh" "$base"
else
    echo "base image $base: already there"
fi

# No buildx plugin: the engine's own builder.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
for pair in "postgres:$postgres" "nginx:$proxy"; do
    name="${pair%%:*}"
    image="${pair#*:}"
    echo "building $image (deploy/$name.Dockerfile)"
    docker build --network host --build-arg "BASE_IMAGE=$base" \
        -f "$here/deploy/$name.Dockerfile" -t "$image" "$here/deploy"
done
echo "ready: docker compose --env-file deploy/offline.env up -d --build"
