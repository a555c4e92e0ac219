"""Wrappers around any transformation: gradient accumulation and skipping non-finite steps,
parameter averaging (lookahead, EMA), sharpness-aware minimization (SAM, ASAM), schedule-free
averaging, Mechanic's learned scale, cautious masking, complex params as real pairs, conditional
runs (masked or passed through), one flat vector, monitoring, checkify-checked runs; and
microbatching, around a function of a batch."""
