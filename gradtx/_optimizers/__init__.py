"""The optimizers, one module per family (SGD-like, adaptive, Adam-like and its variants,
sign-based, factored, layer-wise, optimistic), each optimizer a short chain of elementary
transformations."""
