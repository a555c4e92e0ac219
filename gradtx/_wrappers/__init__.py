"""Wrappers around any transformation: gradient accumulation and skipping non-finite steps,
parameter averaging (lookahead, EMA), sharpness-aware minimization (SAM, ASAM), monitoring,
checkify-checked runs."""
