"""Elementary transformations, one module per concern: momentum, second moments, the Adam
family's preconditioners, sign methods, factored statistics, per-block norms, step sizes,
optimistic gradients, decay, clipping, gradient processing (noise, centring) and low-memory
storage."""
