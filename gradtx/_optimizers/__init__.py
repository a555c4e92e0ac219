"""The optimizers, one module per family, each optimizer a short chain of elementary
transformations."""
