# Production image: gunicorn serving the CDS Hooks service as a non-root user.
#   docker build -t anakinra-cds .
#   docker run -p 8080:8080 -v $PWD/issuers:/config:ro \
#       -e CDS_TRUSTED_ISSUERS=/config/trusted-issuers.json \
#       -e CDS_PUBLIC_BASE_URL=https://cds.example.org anakinra-cds
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package (with its policy data and value sets) first, so code edits rebuild less.
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY fhir_mappings ./fhir_mappings
RUN pip install ".[postgres]"

# Service definitions, schemas and example requests live beside the package.
COPY hooks ./hooks

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cds \
    && mkdir -p /app/var \
    && chown cds:cds /app/var

ENV CDS_HOOKS_DIR=/app/hooks \
    CDS_DATABASE_URL=sqlite:////app/var/cds.sqlite

USER cds
EXPOSE 8080

# Liveness: /health/live answers 200 without credentials (docs/operations.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request\ntry:\n    urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=4)\nexcept OSError:\n    sys.exit(1)"]

CMD ["cds-service", "serve", "--host", "0.0.0.0"]
