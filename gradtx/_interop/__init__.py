"""Interop with code written for optax: its ``inject_hyperparams`` over gradtx's live tables."""
