"""The optimizers, one module per family (SGD-like, adaptive, Adam-like, its variants, relatives
and descendants, sign-based, factored, layer-wise, optimistic, matrix-aware, schedule-free,
learning-rate-free, differentially private), each optimizer a short chain of elementary
transformations."""
