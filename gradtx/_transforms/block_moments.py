"""Adam-mini's second moment: one value per block of a leaf (a head, a neuron, a token, the
whole leaf) instead of one per element, the blocks named by a function of the leaf's path and
shape (by default the adam-mini package's rules on transformer names).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.adam_family import in_gradient_dtypes
from gradtx._transforms.momentum import debias_step, ema_step
from gradtx._transforms.second_moments import root_scale_step

# ---- Adam-mini ---------------------------------------------------------------------------


class AdamMiniBlocks(NamedTuple):
    """How :func:`gradtx.adam_mini` splits a leaf into blocks that share one second moment.

    Attributes:
      axes: the axes whose indices tell the blocks apart (of the leaf, or of ``shape`` when
        given); every other axis is averaged over. ``()``: the whole leaf is one block; every
        axis: one block per element (Adam).
      shape: if given, the leaf is first viewed as this shape (row-major, as ``reshape``; one
        entry may be -1): ``AdamMiniBlocks(0, (heads, -1))`` gives one block per head of a
        PyTorch-layout query weight (heads * head_dim, d_model).
    """

    axes: int | Sequence[int] = ()
    shape: Sequence[int] | None = None


# the adam-mini package's names (Zhang et al., 2024, its version 1.1.1): matched as substrings
# of a leaf's lowercased path, its keys joined by "."
_EMBEDDING = ("embed", "embd", "wte")
_OUTPUT = ("lm_head", "output", "final_layer")
_QUERY_KEY = ("k_proj", "q_proj", "wq", "wk", "query", "key")
_PER_NEURON = ("v_proj", "wv", "value", "o_proj", "wo", "attn.proj", "feed_forward", "linear")
_PER_NEURON += ("mlp",)
_NO_DECAY = ("norm", "ln", "bias")


def _dotted(path: str) -> str:
    return path.lower().replace("/", ".")


def adam_mini_blocks(
    path: str, shape: Sequence[int], num_heads: int | None = None
) -> AdamMiniBlocks:
    r"""Adam-mini's default blocks of a leaf, from its path and shape (the adam-mini package's
    rules on the usual transformer names).

    The path's keys are joined by "." and lowercased, then matched in this order:

    * ``bias``: one block per element (Adam);
    * a query or key (``q_proj``, ``k_proj``, ``wq``, ``wk``, ``query``, ``key``): one block
      per head. A leaf of rank 3 is Flax's (d_model, heads, head_dim): its axis 1. A matrix
      needs ``num_heads``; its heads have ``d_model / num_heads`` outputs each (the package's
      ``dim * dim / n_heads`` elements, which also counts grouped key heads right);
    * an embedding, output, value, attention output or MLP weight (``embed``, ``embd``,
      ``wte``, ``lm_head``, ``output``, ``final_layer``, ``v_proj``, ``wv``, ``value``,
      ``o_proj``, ``wo``, ``attn.proj``, ``feed_forward``, ``linear``, ``mlp``) of rank >= 2:
      one block per output neuron (per token for an embedding or an output head);
    * anything else (norm scales, other weights): one block per leaf.

    "Output" is axis 0 of a PyTorch-layout ``weight`` (out, in) and of an ``embedding``
    (vocab, d_model), and the last axis of a Flax ``kernel`` (in, ..., out): the layout is read
    from the leaf's last key.

    Args:
      path: the leaf's path, keys joined by "/" (or "."), e.g. ``"layers/0/attn/q_proj/weight"``.
      shape: the leaf's shape.
      num_heads: the attention heads of a query (the package's ``n_heads``); needed for a
        query or key kept as a matrix.

    Returns:
      An :class:`AdamMiniBlocks`.

    Example:
      >>> import gradtx
      >>> gradtx.adam_mini_blocks("embed/weight", (100, 16))
      AdamMiniBlocks(axes=(0,), shape=None)
      >>> gradtx.adam_mini_blocks("attn/q_proj/weight", (16, 16), num_heads=4)
      AdamMiniBlocks(axes=(0,), shape=(4, 64))

    References:
      Zhang, Chen, Li, Ding, Chen, Ye, Luo and Sun, *Adam-mini: Use Fewer Learning Rates To Gain
      More*, ICLR 2025 (arXiv:2406.16793), Algorithm 1 and section 2.3.
    """
    owner = "adam_mini_blocks"
    if not isinstance(path, str):
        raise TypeError(f"{owner}: path must be a str, got {path!r}")
    shape = tuple(shape)
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise TypeError(f"{owner}: shape must be a tuple of sizes, got {shape!r}")
    if num_heads is not None and (isinstance(num_heads, bool) or not isinstance(num_heads, int)):
        raise TypeError(f"{owner}: num_heads must be an int or None, got {num_heads!r}")
    if num_heads is not None and num_heads < 1:
        raise ValueError(f"{owner}: num_heads must be >= 1, got {num_heads!r}")
    name = _dotted(path)
    flax = name.rsplit(".", 1)[-1] == "kernel"
    if "bias" in name:
        return AdamMiniBlocks(tuple(range(len(shape))))
    if any(key in name for key in _QUERY_KEY) and len(shape) >= 2:
        if len(shape) == 3 and flax:
            return AdamMiniBlocks((1,))
        if len(shape) != 2:
            raise ValueError(
                f"{owner}: the query or key {path!r} of shape {shape} is neither a matrix nor "
                f"Flax's (d_model, heads, head_dim): give adam_mini its blocks"
            )
        d_model = shape[0] if flax else shape[1]
        out = shape[1] if flax else shape[0]
        if num_heads is None:
            raise ValueError(
                f"{owner}: the query or key {path!r} is a matrix: pass num_heads to split it "
                f"into heads"
            )
        if d_model == 0 or d_model % num_heads or out % (d_model // num_heads):
            raise ValueError(
                f"{owner}: the query or key {path!r} of shape {shape} does not split into "
                f"heads of d_model / num_heads = {d_model} / {num_heads} outputs"
            )
        head = d_model // num_heads
        if flax:
            return AdamMiniBlocks((1,), (d_model, out // head, head))
        return AdamMiniBlocks((0,), (out // head, head * d_model))
    if any(key in name for key in _EMBEDDING + _OUTPUT + _PER_NEURON) and len(shape) >= 2:
        return AdamMiniBlocks((len(shape) - 1,) if flax else (0,))
    return AdamMiniBlocks()


def adam_mini_decay_mask(params: Any) -> Any:
    """The adam-mini package's weight-decay mask: False for leaves whose lowercased path has
    ``norm``, ``ln`` or ``bias`` in it."""

    def decays(path, _):
        name = _dotted(_tree.path_str(path))
        return not any(key in name for key in _NO_DECAY)

    return jax.tree_util.tree_map_with_path(decays, params)


def _reshaped(owner: str, path: str, shape: tuple[int, ...], target: Any) -> tuple[int, ...]:
    """``target`` with its -1 resolved, if a leaf of ``shape`` can be viewed as it."""
    problem = ValueError(
        f"{owner}: the leaf {path!r} of shape {shape} cannot be viewed as {target!r}"
    )
    if not isinstance(target, (tuple, list)) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= -1 for n in target
    ):
        raise problem
    target, size = tuple(int(n) for n in target), math.prod(shape)
    unknown = [i for i, n in enumerate(target) if n == -1]
    if len(unknown) > 1:
        raise problem
    if unknown:
        known = math.prod(n for n in target if n != -1)
        if known == 0 or size % known:
            raise problem
        target = tuple(size // known if n == -1 else n for n in target)
    if math.prod(target) != size:
        raise problem
    return target


def _view(owner: str, path: str, shape: tuple[int, ...], spec: Any):
    """``(view_shape, averaged_axes)`` of a leaf, checked."""
    if not isinstance(spec, AdamMiniBlocks):
        raise TypeError(
            f"{owner}: blocks must give an AdamMiniBlocks for each leaf, got {spec!r} for {path!r}"
        )
    view = shape if spec.shape is None else _reshaped(owner, path, shape, spec.shape)
    axes = (spec.axes,) if isinstance(spec.axes, (int, np.integer)) else tuple(spec.axes)
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"{owner}: the blocks' axes must be ints, got {spec.axes!r} for {path!r}")
    if any(not -len(view) <= a < len(view) for a in axes):
        raise ValueError(
            f"{owner}: the blocks' axes {spec.axes!r} are out of range for {path!r} viewed as "
            f"{view}"
        )
    kept = {int(a) % len(view) for a in axes}
    return view, tuple(a for a in range(len(view)) if a not in kept)


class ScaleByAdamMiniState(NamedTuple):
    count: jax.Array  # int32 []: updates taken so far
    mu: Any  # like the params (mu_dtype if given): the first moment
    nu: Any  # per leaf, real: one second moment per block, shaped like the leaf's view with
    #          the averaged axes of size 1


def _scale_by_adam_mini(b1, b2, eps, *, blocks, mu_dtype):
    owner = "scale_by_adam_mini"
    scale = root_scale_step(eps, eps_in_sqrt=False)

    def views(tree):
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        out = []
        for path, x in leaves:
            where = _tree.path_str(path)
            out.append(_view(owner, where, tuple(np.shape(x)), blocks(where, tuple(np.shape(x)))))
        return out

    def init(params):
        def second(x, view):
            shape, averaged = view
            reduced = tuple(1 if i in averaged else n for i, n in enumerate(shape))
            return jnp.zeros(reduced, _tree.real_dtype(jnp.result_type(x)))

        flat, treedef = jax.tree.flatten(params)
        nu = treedef.unflatten([second(x, v) for x, v in zip(flat, views(params))])
        return ScaleByAdamMiniState(_tree.zero_count(), _tree.zeros_like(params, mu_dtype), nu)

    def update(updates, state, params=None, **extra):
        _tree.check_match(owner, (updates, state.mu), ("updates", "state"))
        count = _tree.saturating_increment(state.count)
        ema1, ema2 = ema_step(b1), ema_step(b2)
        debias1, debias2 = debias_step(b1, count), debias_step(b2, count)
        flat, treedef = jax.tree.flatten(updates)
        found = views(updates)
        results = []
        for g, m, v, (shape, averaged) in zip(
            flat, treedef.flatten_up_to(state.mu), treedef.flatten_up_to(state.nu), found
        ):
            reduced = tuple(1 if i in averaged else n for i, n in enumerate(shape))
            if v.shape != reduced:
                raise ValueError(
                    f"{owner}: the state's second moment of shape {v.shape} was made for other "
                    f"blocks than the updates' (shape {reduced})"
                )
            given = g.dtype
            if mu_dtype is not None:
                g = _tree.cast(g, _tree.wider(g.dtype, jnp.float32))
            m = ema1(g, m)
            # the blocks' means in at least float32 (a bfloat16 sum of squares loses digits)
            wide = _tree.cast(g, _tree.accumulation_dtype(g.dtype))
            square = _tree.abs_sq(jnp.reshape(wide, shape))
            size = math.prod(shape[i] for i in averaged)
            mean = jnp.sum(square, axis=averaged, keepdims=True) / max(size, 1)
            v = ema2(mean, v)
            direction = jnp.reshape(debias1(m), shape)
            out = jnp.reshape(scale(direction, debias2(v)), np.shape(m)).astype(given)
            results.append((out, m, v))
        pick = lambda i: treedef.unflatten([r[i] for r in results])  # noqa: E731
        new = ScaleByAdamMiniState(
            count, _tree.cast_like(pick(1), state.mu), _tree.cast_like(pick(2), state.nu)
        )
        return pick(0), new

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def check_blocks(owner: str, blocks: Any, num_heads: Any) -> Callable[[str, tuple], Any]:
    """The blocks function: ``blocks``, or the package's rules with ``num_heads``."""
    if num_heads is not None and (isinstance(num_heads, bool) or not isinstance(num_heads, int)):
        raise TypeError(f"{owner}: num_heads must be an int or None, got {num_heads!r}")
    if num_heads is not None and num_heads < 1:
        raise ValueError(f"{owner}: num_heads must be >= 1, got {num_heads!r}")
    if blocks is None:
        return functools.partial(adam_mini_blocks, num_heads=num_heads)
    if not callable(blocks):
        raise TypeError(
            f"{owner}: blocks must be a function (path, shape) -> AdamMiniBlocks or None, "
            f"got {blocks!r}"
        )
    return blocks


def scale_by_adam_mini(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    *,
    blocks: Callable[[str, tuple[int, ...]], AdamMiniBlocks] | None = None,
    num_heads: int | None = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam-mini's preconditioner: Adam's, with one second moment per block of each leaf.

    For a block :math:`B` of a leaf (:class:`AdamMiniBlocks`):

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
      v_{B,t} = \beta_2 v_{B,t-1} + (1-\beta_2)\, \mathrm{mean}_{i \in B} |g_{t,i}|^2, \qquad
      \text{out}_{t,i} = \frac{m_{t,i} / (1-\beta_1^t)}{\sqrt{v_{B,t} / (1-\beta_2^t)} + \epsilon}

    (Zhang et al., 2024, Algorithm 1). The blocks follow the Hessian's near-block-diagonal
    structure: by default the adam-mini package's (:func:`gradtx.adam_mini_blocks`): a head of
    a query or key, an output neuron of the value, attention-output and MLP weights, a token of
    the embedding and output head, an element of a bias, a whole leaf otherwise. Complex
    params: :math:`|g|^2`, real.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the package's; the paper trains with 0.95).
      eps: ε >= 0 outside the root. Default 1e-8 (the package's).
      blocks: ``(path, shape) -> AdamMiniBlocks`` for each leaf (its path's keys joined by
        "/"). Default: :func:`gradtx.adam_mini_blocks` with ``num_heads``.
      num_heads: the attention heads, for the default blocks of a query or key matrix.
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_adam_mini()
      >>> g = {"w": jnp.array([3.0, 4.0])}  # one block: v = (9 + 16) / 2 (1 - b2)
      >>> [round(x, 4) for x in tx.update(g, tx.init(g))[0]["w"].tolist()]
      [0.8485, 1.1314]

    References:
      Zhang, Chen, Li, Ding, Chen, Ye, Luo and Sun, *Adam-mini: Use Fewer Learning Rates To Gain
      More*, ICLR 2025 (arXiv:2406.16793), Algorithm 1.
    """
    owner = "scale_by_adam_mini"
    build = functools.partial(
        _scale_by_adam_mini,
        blocks=check_blocks(owner, blocks, num_heads),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps)
