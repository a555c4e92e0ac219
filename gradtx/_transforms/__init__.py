"""Elementary transformations, one module per concern: momentum, second moments, the Adam
family's preconditioners, sign methods, factored statistics, matrix preconditioners, per-block
norms, step sizes (learning-rate-free ones included), optimistic gradients, decay, clipping,
gradient processing (noise, centring, normalization), differential privacy, constraints
(NaNs to zero, non-negative params), periodic application, measurements kept in the state and
low-memory storage."""
