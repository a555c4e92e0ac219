"""optax's ``optax.second_order`` names, for code written against optax.

optax 0.2.8 deprecates its ``second_order`` module (to be removed in 0.2.9); gradtx keeps the
names, without a warning. The functions live in :mod:`gradtx._curvature.diagonals`. ``hvp``
here is optax's ``second_order.hvp(loss, v, params, inputs, targets)``, with ``v`` a flat
vector; the general :func:`gradtx.hvp` ``(fn, params, v, *args)`` takes pytrees.
"""

from gradtx._curvature.diagonals import fisher_diag as fisher_diag
from gradtx._curvature.diagonals import hessian_diag as hessian_diag
from gradtx._curvature.diagonals import hvp as hvp

__all__ = ["fisher_diag", "hessian_diag", "hvp"]
