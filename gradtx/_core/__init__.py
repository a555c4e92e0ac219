"""The core: the transformation pair, chain and partition, live hyperparameters, tree math,
sharding, grouped per-dtype execution and checkpoint checks. Everything else is built on it."""
