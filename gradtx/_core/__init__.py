"""The core: the transformation pair, chain and partition, masked and freeze (masks and the
placeholders of the leaves they leave out in masking), live hyperparameters, tree math,
sharding, grouped per-dtype execution and checkpoint checks; optax's multi_transform and
selective_transform in optax's state layout, and multi_normal. Everything else is built on it."""
