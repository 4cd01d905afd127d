#!/usr/bin/env bash
# Make a local Debian base image for the service's Dockerfile where no image registry can be
# reached (an offline build machine, CI without registry access):
#
#   scripts/docker-base-image.sh [IMAGE_NAME]        # default: anakinra-cds-base:bookworm
#   docker build --network host --build-arg BASE_IMAGE=anakinra-cds-base:bookworm -t anakinra-cds .
#
# It runs debootstrap (Debian's packages: python3 and its venv module, CA certificates) into a
# temporary folder and imports that folder as an image with `docker import`. It needs root, the
# `debootstrap` program, a running Docker engine and access to a Debian package mirror
# (DEBIAN_MIRROR, default: the first Debian archive in this machine's apt sources).
# This machine's own extra CA certificates (/usr/local/share/ca-certificates, e.g. for a
# TLS-inspecting proxy in front of the package index) are added to the image's trust store,
# and pip is told to use that store (PIP_CERT), so that `pip install` in the build reaches
# the index as the machine does; EXTRA_CA_DIR
# names another folder of *.crt files.
# Anyone who can pull images uses the Dockerfile's default base image instead.
set -euo pipefail

IMAGE="${1:-anakinra-cds-base:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
PACKAGES="python3,python3-venv,ca-certificates"

die() { echo "docker-base-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
command -v docker >/dev/null || die "the docker client is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd first)"

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # "deb URL suite ..." lines and deb822 "URIs: URL" lines; the first archive ending in /debian.
    mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | awk '$1 == "deb" || $1 == "URIs:" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }')" || true
fi
[ -n "$mirror" ] || die "no Debian mirror found in the apt sources: set DEBIAN_MIRROR"

root="$(mktemp -d /tmp/cds-base-XXXXXX)"
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"  # it becomes the image's "/": every user must be able to enter it

echo "debootstrap: $SUITE from $mirror into $root (a few minutes)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror"
ca_dir="${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
if compgen -G "$ca_dir/*.crt" >/dev/null; then
    echo "adding the CA certificates of $ca_dir"
    cp "$ca_dir"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
# Keep the image small: no package lists or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
echo "docker import: $IMAGE"
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE"
echo "made $IMAGE"
