"""Da Vinci CRD: coverage information, configuration options, card types, per-hook rules."""
