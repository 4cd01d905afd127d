# Production image: gunicorn serving the CDS Hooks service as a non-root user.
#   docker build -t anakinra-cds .
#   docker run -p 8080:8080 -v "$PWD/config:/config:ro" \
#       -e CDS_TRUSTED_ISSUERS=/config/trusted-issuers.json \
#       -e CDS_PUBLIC_BASE_URL=https://cds.example.org anakinra-cds
# Authentication is on unless CDS_AUTH=disabled is set; the hook files, schemas and policy
# packs come with the installed package (CDS_HOOKS_DIR / CDS_POLICY_PACKS_DIR override them).
#
# BASE_IMAGE: any Debian-based image with Python 3.11+ and its venv module. Where no image
# registry can be reached, scripts/docker-base-image.sh makes one with debootstrap:
#   docker build --network host --build-arg BASE_IMAGE=anakinra-cds-base:bookworm -t anakinra-cds .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# The audit store: SQLite under /app/var (mount a volume there), or PostgreSQL by URL.
# HEALTHCHECK_URL: what the health check below calls.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/cds \
    PATH=/opt/cds/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CDS_DATABASE_URL=sqlite:////app/var/cds.sqlite \
    HEALTHCHECK_URL=http://127.0.0.1:8080/health/live

# Dependencies first, at the versions of constraints.txt, so a code change rebuilds less.
COPY pyproject.toml constraints.txt /build/
RUN python3 -m venv /opt/cds \
    && cd /build \
    && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > requirements.txt \
    && pip install -c constraints.txt -r requirements.txt

# The package itself: code, policy packs, value sets and hook files (as package data; the
# .dockerignore lets in nothing else). `check` fails the build if any of them is missing.
COPY . /build/
RUN pip install --no-deps -c /build/constraints.txt /build \
    && rm -rf /build \
    && CDS_AUTH=disabled cds-service check >/dev/null \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin cds \
    && mkdir -p /app/var \
    && chown cds:cds /app/var

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# Liveness: /health/live answers 200 without credentials (docs/operations.md). Serving on
# another port or address (e.g. with the host's network)? Set HEALTHCHECK_URL to match.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request\ntry:\n    urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)\nexcept OSError:\n    sys.exit(1)"]

CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8080"]
