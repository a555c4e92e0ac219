"""Low-memory moments: block-wise 8-bit quantization and stochastic rounding to 16-bit floats.

Two ways to store an optimizer moment in less than float32, each written for one array:

* :func:`quantize` / :func:`dequantize`: 8 bits per value plus one float32 scale per block of
  :data:`BLOCK_SIZE` values (Dettmers et al., 2022). Each block is divided by its largest
  magnitude (absmax), and each value in ``[-1, 1]`` is stored as the index of the nearest of the
  256 values of the *dynamic* data type (:func:`dynamic_map`), whose values are spread over
  seven decades so that small entries of a block keep a relative precision.
* :func:`stochastic_round`: a float32 value rounded to bfloat16 or float16, up or down at
  random with the probabilities that make the rounding unbiased. An exponential average with
  decay 0.999 stored in bfloat16 by round-to-nearest stalls: an increment below half a bfloat16
  ulp (2^-9 relative) is lost every time, so the average stops moving (measured in
  tests/test_low_memory.py: decaying from 1 with no input it stays at 1 forever, and fed a
  constant ``c`` from 0 it stalls at ``c / 4``). Unbiased rounding keeps the expected value
  on the float32 trajectory.

The random bits come from a hash of the element's index, the step count and a per-leaf salt,
not from a key in the state: the rounding is reproducible and costs no state.

Block size: 256, not the paper's 2048. A block's error is set by its absmax, so smaller blocks
isolate outliers better; the last block of a leaf wastes fewer padding entries in the step;
and the scales cost 4 / 256 = 0.016 bytes per value (2048: 0.002), which is small against the
1 byte of the code. The paper's 2048 fits its GPU kernel's tiling, which XLA does not need.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import _tree

BLOCK_SIZE = 256  # values per absmax scale (see the module docstring)
MIN_8BIT_SIZE = 4096  # leaves with fewer elements stay in float32, the paper's rule

# ---- the dynamic quantization map ----------------------------------------------------------


@functools.cache
def _dynamic_map(signed: bool) -> np.ndarray:
    values = [0.0, 1.0]
    for level in range(7):  # magnitudes 1e-6 ... 1: one decade per level
        # The linear fraction in [0.1, 1] gets one more bit per decade towards 1 (signed: the
        # sign takes one bit, so half as many bins per decade).
        bins = 2**level if signed else 2 ** (level + 1)
        edges = np.linspace(0.1, 1.0, bins + 1)
        centres = (edges[:-1] + edges[1:]) / 2 * 10.0 ** (level - 6)
        values.extend(centres)
        if signed:
            values.extend(-centres)
    table = np.sort(np.asarray(values, np.float64))
    assert table.size == 256
    return table


def dynamic_map(signed: bool) -> np.ndarray:
    r"""The 256 values of the dynamic (tree) 8-bit data type, sorted, as float64.

    A code stands for :math:`\pm 10^{-e} f`: the exponent :math:`e \in \{0, ..., 6\}` is given by
    the number of leading zero bits, and the bits after the first 1 are a linear fraction
    :math:`f \in (0.1, 1)` (the centre of one of :math:`2^k` equal bins, more bins in larger
    decades). Together with 0 and 1 that makes 256 values. ``signed=True`` (for first moments)
    spends one bit on the sign; ``signed=False`` (for second moments, which are >= 0) uses it for
    one more fraction bit.

    Args:
      signed: the signed map (values in (-1, 1]) or the unsigned one (values in [0, 1]).

    Returns:
      A read-only ``float64`` array of shape ``[256]``, increasing.

    Example:
      >>> from gradtx._quantized import dynamic_map
      >>> table = dynamic_map(signed=False)
      >>> float(table[0]), float(table[-1]), int((table > 0.1).sum())
      (0.0, 1.0, 129)

    References:
      Dettmers, *8-Bit Approximations for Parallelism in Deep Learning*, ICLR 2016 (the dynamic
      tree data type); Dettmers, Lewis, Shleifer and Zettlemoyer, *8-bit Optimizers via
      Block-wise Quantization*, ICLR 2022, section 2.
    """
    table = _dynamic_map(bool(signed)).copy()
    table.flags.writeable = False
    return table


def _tables(signed: bool) -> tuple[jax.Array, jax.Array]:
    """The map and the midpoints between neighbours (the rounding thresholds), as float32."""
    table = _dynamic_map(bool(signed))
    midpoints = (table[1:] + table[:-1]) / 2
    return jnp.asarray(table, jnp.float32), jnp.asarray(midpoints, jnp.float32)


# ---- 8-bit block-wise quantization, for one array -----------------------------------------


class QuantizedArray(NamedTuple):
    """One array stored in 8 bits per value with one float32 scale per block."""

    codes: jax.Array  # uint8, the array's shape: indices into dynamic_map(signed)
    scale: jax.Array  # float32 [ceil(size / block_size)]: each block's absmax (NaN: non-finite)


def _blocks(flat: jax.Array, block_size: int) -> jax.Array:
    """``flat`` zero-padded to whole blocks, as ``[n_blocks, block_size]``."""
    n_blocks = -(-flat.size // block_size)
    return jnp.pad(flat, (0, n_blocks * block_size - flat.size)).reshape(n_blocks, block_size)


def quantize(x: jax.Array, *, signed: bool, block_size: int = BLOCK_SIZE) -> QuantizedArray:
    r"""Block-wise 8-bit quantization of one array with the dynamic map.

    .. math::
      s_b = \max_{i \in b} |x_i|, \qquad
      q_i = \operatorname{argmin}_j \left| x_i / s_b - T_j \right|

    over blocks :math:`b` of ``block_size`` consecutive elements (row-major), with :math:`T` the
    :func:`dynamic_map`. Zeros are stored exactly (a block of zeros has scale 0); with the
    unsigned map, negative values are stored as 0. A block holding an infinity or a NaN gets a
    NaN scale, so that the whole block dequantizes to NaN: a non-finite value is never turned
    into a finite one.

    Args:
      x: a real array (computed in float32, or float64 if given float64).
      signed: use the signed map (any sign) or the unsigned one (for values >= 0).
      block_size: elements per scale.

    Returns:
      A :class:`QuantizedArray` (``codes`` of ``x``'s shape, uint8; ``scale``, float32).

    Example:
      >>> import jax.numpy as jnp
      >>> from gradtx._quantized import quantize, dequantize
      >>> q = quantize(jnp.array([0.0, -0.5, 2.0]), signed=True)
      >>> q.scale, dequantize(q, signed=True)
      (Array([2.], dtype=float32), Array([ 0.       , -0.4953125,  2.       ], dtype=float32))
    """
    x = jnp.asarray(x)
    dtype = _tree.accumulation_dtype(x.dtype)
    blocks = _blocks(x.reshape(-1).astype(dtype), block_size)
    absmax = jnp.max(jnp.abs(blocks), axis=1)
    finite = jnp.isfinite(absmax)
    divisor = jnp.where(finite & (absmax > 0), absmax, jnp.ones_like(absmax))
    _, midpoints = _tables(signed)
    codes = jnp.searchsorted(
        midpoints.astype(dtype), blocks / divisor[:, None], method="scan_unrolled"
    )
    codes = codes.astype(jnp.uint8).reshape(-1)[: x.size].reshape(x.shape)
    scale = jnp.where(finite, absmax, jnp.full_like(absmax, jnp.nan)).astype(jnp.float32)
    return QuantizedArray(codes=codes, scale=scale)


def dequantize(q: QuantizedArray, *, signed: bool, block_size: int = BLOCK_SIZE) -> jax.Array:
    """The float32 values of a :class:`QuantizedArray`: ``dynamic_map(signed)[code] * scale``.

    ``signed`` and ``block_size`` must be those the array was quantized with.
    """
    table, _ = _tables(signed)
    values = _blocks(table[q.codes.reshape(-1).astype(jnp.int32)], block_size)
    values = values * q.scale[:, None]
    return values.reshape(-1)[: q.codes.size].reshape(q.codes.shape)


# ---- trees of moments: big leaves 8-bit, small ones in float32 ----------------------------


def _is_quantized(x: Any) -> bool:
    return isinstance(x, QuantizedArray)


def compress(tree: Any, *, signed: bool, min_size: int = MIN_8BIT_SIZE) -> Any:
    """Each leaf with at least ``min_size`` elements quantized; the others kept as they are."""

    def leaf(x):
        return quantize(x, signed=signed) if x.size >= min_size else x

    return jax.tree.map(leaf, tree)


def decompress(tree: Any, *, signed: bool) -> Any:
    """The inverse of :func:`compress` (up to the quantization): a tree of plain arrays."""

    def leaf(x):
        return dequantize(x, signed=signed) if _is_quantized(x) else x

    return jax.tree.map(leaf, tree, is_leaf=_is_quantized)


# ---- stochastic rounding, for one array ----------------------------------------------------


def _mix(h: jax.Array) -> jax.Array:
    """A 32-bit integer finalizer (xor-shift-multiply): every input bit reaches every output."""
    h = h ^ (h >> jnp.uint32(16))
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> jnp.uint32(13))
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> jnp.uint32(16))


def uniform_hash(shape: tuple[int, ...], step: jax.Array, salt: int) -> jax.Array:
    """Float32 numbers in [0, 1), one per element, from a hash of (index, step, salt)."""
    key = _mix(jnp.asarray(step).astype(jnp.uint32) * jnp.uint32(0x9E3779B9) + jnp.uint32(salt))
    size = int(np.prod(shape))
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    bits = _mix(index * jnp.uint32(0x632BE5AB) + key)
    return (bits >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0**-24)


def stochastic_round(x: jax.Array, dtype: Any, step: jax.Array, salt: int = 0) -> jax.Array:
    r"""``x`` rounded to the lower-precision float ``dtype`` without bias.

    With :math:`a \le x \le b` the two neighbours of ``x`` in ``dtype``, the result is :math:`b`
    with probability :math:`(x - a) / (b - a)` and :math:`a` otherwise, so its expectation is
    ``x``. Values that ``dtype`` holds exactly, infinities and NaN are kept.

    Args:
      x: the values, in a dtype at least as precise as ``dtype``.
      dtype: the storage dtype (bfloat16, float16).
      step: an integer scalar (the step count): a new draw each step.
      salt: an integer distinguishing arrays rounded in the same step.

    Returns:
      An array of ``dtype``, shaped like ``x``.
    """
    nearest = x.astype(dtype)
    near = nearest.astype(x.dtype)
    towards = jnp.where(near > x, jnp.asarray(-jnp.inf, dtype), jnp.asarray(jnp.inf, dtype))
    other = jnp.nextafter(nearest, towards)
    # in [0, 1/2]: the distance to the nearest over the spacing (NaN for inf and NaN: kept)
    chance = (x - near) / (other.astype(x.dtype) - near)
    take = uniform_hash(x.shape, step, salt).astype(x.dtype) < chance
    return jnp.where(take, other, nearest)
