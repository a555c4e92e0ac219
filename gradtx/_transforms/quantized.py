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

from gradtx._core import tree as _tree

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
      >>> from gradtx._transforms.quantized import dynamic_map
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


@functools.cache
def _thresholds(signed: bool) -> np.ndarray:
    """float32 ``[257]``: ``-inf``, the 255 midpoints between neighbouring map values, ``+inf``.

    Code ``k`` stands for the values ``y`` with ``t[k] < y <= t[k + 1]``.
    """
    table = _dynamic_map(bool(signed))
    midpoints = ((table[1:] + table[:-1]) / 2).astype(np.float32)
    return np.concatenate([[-np.inf], midpoints, [np.inf]]).astype(np.float32)


# Buckets of float32 magnitudes for the code lookup: the top 16 bits of the bit pattern (exponent
# and 7 mantissa bits), from 2**-24 (below: bucket 0) to 2 (above: the last bucket). They are fine
# enough that no bucket holds two midpoints (checked when the tables are built).
_MIN_EXPONENT = 127 - 24
_BUCKETS = (128 - _MIN_EXPONENT) << 7  # per sign


@functools.cache
def _code_tables(signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket (positive ones, then negative ones): the code of its lowest value, uint8, and the
    one midpoint above it that may lie inside the bucket, float32."""
    thresholds = _thresholds(signed).astype(np.float64)
    midpoints = thresholds[1:-1]
    k = np.arange(_BUCKETS, dtype=np.uint32) + (_MIN_EXPONENT << 7)
    low = (k << 16).view(np.float32).astype(np.float64)
    high = ((k + 1) << 16).view(np.float32).astype(np.float64)
    low[0], high[-1] = 0.0, np.inf
    # a bucket covers [low, high) if positive, (-high, -low] if negative
    first = np.concatenate(
        [np.searchsorted(midpoints, low, "left"), np.searchsorted(midpoints, -high, "right")]
    )
    last = np.concatenate(
        [np.searchsorted(midpoints, high, "left"), np.searchsorted(midpoints, -low, "right")]
    )
    assert np.all(last - first <= 1), "a bucket holds two midpoints"
    return first.astype(np.uint8), thresholds[first + 1].astype(np.float32)


def _nearest_code(y: jax.Array, signed: bool) -> jax.Array:
    """The code of the map value nearest to each ``y`` (in [-1, 1]): the number of midpoints
    below ``y``, as ``searchsorted`` counts them, in a few operations and two table lookups.

    The top 16 bits of ``y``'s float32 pattern pick a bucket of values; a bucket holds at most one
    midpoint, so the code is the code of the bucket's lowest value, plus one if ``y`` is above that
    midpoint. tests/test_low_memory.py checks it against ``searchsorted`` on every float32 near a
    midpoint; benchmarks/low_memory.py can check it on every float32 in [-1, 1].
    """
    first, above = _code_tables(bool(signed))
    bits = jax.lax.bitcast_convert_type(y.astype(jnp.float32), jnp.uint32)
    magnitude = ((bits & jnp.uint32(0x7FFFFFFF)) >> jnp.uint32(16)).astype(jnp.int32)
    bucket = jnp.clip(magnitude - (_MIN_EXPONENT << 7), 0, _BUCKETS - 1)
    bucket = jnp.where(bits >> jnp.uint32(31) == 0, bucket, bucket + _BUCKETS)
    code = jnp.asarray(first)[bucket]
    return code + (y > jnp.asarray(above, y.dtype)[bucket]).astype(jnp.uint8)


def _block_absmax(blocks: jax.Array) -> jax.Array:
    """``max(|blocks|, axis=1)`` (NaN if a block holds one) as a tree of elementwise maxima over
    halves: XLA fuses it into one parallel loop, where a row reduction runs on one thread."""
    m = jnp.abs(blocks)
    while m.shape[1] > 1:
        half = (m.shape[1] + 1) // 2
        rest = jnp.pad(m[:, half:], ((0, 0), (0, 2 * half - m.shape[1])))  # zeros: |x| >= 0
        m = jnp.maximum(m[:, :half], rest)
    return m[:, 0]


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
      >>> from gradtx._transforms.quantized import quantize, dequantize
      >>> q = quantize(jnp.array([0.0, -0.5, 2.0]), signed=True)
      >>> q.scale, dequantize(q, signed=True)
      (Array([2.], dtype=float32), Array([ 0.       , -0.4953125,  2.       ], dtype=float32))
    """
    x = jnp.asarray(x)
    dtype = _tree.accumulation_dtype(x.dtype)
    blocks = _blocks(x.reshape(-1).astype(dtype), block_size)
    absmax = _block_absmax(blocks)
    finite = jnp.isfinite(absmax)
    divisor = jnp.where(finite & (absmax > 0), absmax, jnp.ones_like(absmax))
    codes = _nearest_code(blocks / divisor[:, None], signed)
    codes = codes.reshape(-1)[: x.size].reshape(x.shape)
    scale = jnp.where(finite, absmax, jnp.full_like(absmax, jnp.nan)).astype(jnp.float32)
    return QuantizedArray(codes=codes, scale=scale)


def dequantize(q: QuantizedArray, *, signed: bool, block_size: int = BLOCK_SIZE) -> jax.Array:
    """The float32 values of a :class:`QuantizedArray`: ``dynamic_map(signed)[code] * scale``.

    ``signed`` and ``block_size`` must be those the array was quantized with.
    """
    table = jnp.asarray(_dynamic_map(bool(signed)), jnp.float32)
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


def random_bits(shape: tuple[int, ...], step: jax.Array, salt: int) -> jax.Array:
    """Uniform uint32 numbers, one per element, from a hash of (index, step, salt).

    The (step, salt) pair is hashed once, to a scalar key; each element then costs two
    multiplications: ``h = (index ^ key) * c1``, ``h ^= h >> 16``, ``h *= c2``. For a fixed index
    every step is a bijection of ``index ^ key``, so an element's draw is exactly as uniform as the
    key, and draws of different steps are as independent as their keys. Use the high bits: they
    depend on every bit of the input.
    """
    step = jnp.asarray(step).astype(jnp.uint32)
    key = _mix(_mix(step) ^ jnp.uint32((salt * 0x9E3779B9) & 0xFFFFFFFF))
    size = int(np.prod(shape))
    h = (jax.lax.iota(jnp.uint32, size).reshape(shape) ^ key) * jnp.uint32(0x9E3779B1)
    h = h ^ (h >> jnp.uint32(16))
    return h * jnp.uint32(0x85EBCA6B)


def uniform_hash(shape: tuple[int, ...], step: jax.Array, salt: int) -> jax.Array:
    """Float32 numbers in [0, 1) (multiples of 2**-24), one per element: :func:`random_bits`."""
    bits = random_bits(shape, step, salt)
    return (bits >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0**-24)


def _round_to_bfloat16(x: jax.Array, step: jax.Array, salt: int) -> jax.Array:
    """Stochastic rounding of float32 to bfloat16 on the bit pattern.

    bfloat16 is the top half of a float32, so the two neighbours of ``x`` are its bit pattern
    truncated to the top 16 bits and the next pattern up (in magnitude: floats are sign and
    magnitude), and ``x`` lies between them at the fraction ``low / 2**16``, ``low`` its 16 dropped
    bits. Adding a uniform 16-bit integer before truncating carries into the top half with exactly
    that probability. No carry happens when ``low`` is 0 (exact values, infinities); NaN is kept
    apart, as a quiet NaN of the same sign.
    """
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    noise = random_bits(x.shape, step, salt) >> jnp.uint32(16)
    rounded = (bits + noise) >> jnp.uint32(16)
    nan = (bits >> jnp.uint32(16)) | jnp.uint32(0x0040)
    out = jnp.where(x != x, nan, rounded).astype(jnp.uint16)
    return jax.lax.bitcast_convert_type(out, jnp.bfloat16)


def stochastic_round(x: jax.Array, dtype: Any, step: jax.Array, salt: int = 0) -> jax.Array:
    r"""``x`` rounded to the lower-precision float ``dtype`` without bias.

    With :math:`a \le x \le b` the two neighbours of ``x`` in ``dtype``, the result is :math:`b`
    with probability :math:`(x - a) / (b - a)` and :math:`a` otherwise, so its expectation is
    ``x``. Values that ``dtype`` holds exactly, infinities and NaN are kept. The probability is
    resolved to :math:`2^{-16}` for float32 to bfloat16 (done on the bit pattern, in a few integer
    operations per element) and to :math:`2^{-24}` otherwise.

    Args:
      x: the values, in a dtype at least as precise as ``dtype``.
      dtype: the storage dtype (bfloat16, float16).
      step: an integer scalar (the step count): a new draw each step.
      salt: an integer distinguishing arrays rounded in the same step.

    Returns:
      An array of ``dtype``, shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradtx._transforms.quantized import stochastic_round
      >>> x = jnp.full(100_000, 1 + 2.0**-9)  # a quarter of the way from 1 to the next bfloat16
      >>> r = stochastic_round(x, jnp.bfloat16, jnp.int32(1)).astype(jnp.float32)
      >>> sorted(set(r.tolist())), round(float(jnp.mean(r == 1.0)), 2)
      ([1.0, 1.0078125], 0.75)
    """
    if jnp.dtype(dtype) == jnp.bfloat16 and x.dtype == jnp.float32:
        return _round_to_bfloat16(x, step, salt)
    nearest = x.astype(dtype)
    near = nearest.astype(x.dtype)
    towards = jnp.where(near > x, jnp.asarray(-jnp.inf, dtype), jnp.asarray(jnp.inf, dtype))
    other = jnp.nextafter(nearest, towards)
    # in [0, 1/2]: the distance to the nearest over the spacing (NaN for inf and NaN: kept)
    chance = (x - near) / (other.astype(x.dtype) - near)
    take = uniform_hash(x.shape, step, salt).astype(x.dtype) < chance
    return jnp.where(take, other, nearest)
