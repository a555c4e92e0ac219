"""Wrappers around any transformation: gradient accumulation and skipping non-finite steps,
parameter averaging (lookahead, EMA), monitoring, checkify-checked runs."""
