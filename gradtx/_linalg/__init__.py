"""Matrix functions shared by the matrix-aware optimizers: viewing any leaf as a batch of
matrices, Newton–Schulz orthogonalization, inverse p-th roots and power iteration, and the
batched LAPACK factorizations made one matrix at a time on CPU (``lapack``); and non-negative
least squares (``nnls``, optax's name)."""
