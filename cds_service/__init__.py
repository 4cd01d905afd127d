"""CDS Hooks service for health plan drug policy NH.PHAR.244 (anakinra / Kineret)."""
