"""Low-memory moments: an average stored narrower than it is computed (bf16, 8-bit blocks).

Each wrapper keeps the state structure of the moment it wraps (an EmaState whose ``ema`` is
stored narrower), and each feeds it updates in at least float32: the moment is always computed
in float32 or wider, only the stored copy is narrow. Adam's ``mu_dtype``, ``nu_dtype`` and
``optim_bits`` (:func:`gradtx.scale_by_adam`) and its relatives' ``mu_dtype`` are built from them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._transforms import quantized as _quantized


def _at_least_f32(x: jax.Array) -> jax.Array:
    return x.astype(_tree.accumulation_dtype(x.dtype))


def _widened(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` fed its updates in at least float32."""

    def update(updates, state, params=None, **extra):
        return tx.update(jax.tree.map(_at_least_f32, updates), state, params, **extra)

    return GradientTransformation(tx.init, update)


def _narrow(dtype: Any):
    """An ema stored in ``dtype``: round-to-nearest if at least float32, else stochastic."""

    def store(average: GradientTransformation) -> GradientTransformation:
        def init(params):
            state = average.init(params)
            return state._replace(ema=jax.tree.map(lambda x: x.astype(dtype), state.ema))

        def update(updates, state, params=None, **extra):
            wide = state._replace(ema=jax.tree.map(_at_least_f32, state.ema))
            out, new = average.update(updates, wide, params, **extra)
            leaves, treedef = jax.tree.flatten(new.ema)
            if jnp.finfo(dtype).nmant >= jnp.finfo(jnp.float32).nmant:
                stored = [x.astype(dtype) for x in leaves]
            else:
                stored = [
                    _quantized.stochastic_round(x, dtype, new.count, salt)
                    for salt, x in enumerate(leaves)
                ]
            return out, new._replace(ema=treedef.unflatten(stored))

        return GradientTransformation(init, update)

    return store


def _eight_bit(*, signed: bool, min_size: int):
    """An ema whose leaves of at least ``min_size`` elements are stored block-wise in 8 bits, the
    others in at least float32."""

    def store(average: GradientTransformation) -> GradientTransformation:
        def init(params):
            reason = "8-bit moments are real (use optim_bits=32, or a larger min_8bit_size)"
            _tree.check_real_leaves("optim_bits=8", params, reason, min_size)
            state = average.init(params)
            ema = jax.tree.map(_at_least_f32, state.ema)
            return state._replace(ema=_quantized.compress(ema, signed=signed, min_size=min_size))

        def update(updates, state, params=None, **extra):
            wide = state._replace(ema=_quantized.decompress(state.ema, signed=signed))
            out, new = average.update(updates, wide, params, **extra)
            ema = _quantized.compress(new.ema, signed=signed, min_size=min_size)
            return out, new._replace(ema=ema)

        return GradientTransformation(init, update)

    return store


def _in_gradient_dtypes(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` whose updates come out in each gradient's dtype (the low-memory moments are fed
    and computed in float32; the update is rounded once, at the end)."""

    def update(updates, state, params=None, **extra):
        out, state = tx.update(updates, state, params, **extra)
        return jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates), state

    return GradientTransformation(tx.init, update)
