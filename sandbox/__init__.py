"""FHIR sandbox for end-to-end tests and demos: server control and synthetic patients."""
