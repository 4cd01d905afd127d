"""Da Vinci CRD: the coverage-information system action, the payer it speaks for and its
assertion ids, configuration options, card types and per-hook rules. Works on decisions,
mapped facts and pack data; never imports Flask, the FHIR client (`cds_service.prefetch`),
the HTTP layer (`cds_service.api`) or the store."""
