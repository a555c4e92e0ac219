"""Elementary transformations, one module per concern: momentum, second moments, step sizes,
decay, clipping, gradient processing (noise, centring) and low-memory storage."""
