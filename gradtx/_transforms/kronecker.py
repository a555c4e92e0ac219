"""Kronecker-factored preconditioning: Shampoo's statistics, inverse roots, blocks and grafting.

For a gradient :math:`G` of order :math:`k` (a matrix: :math:`k = 2`), Shampoo keeps one
statistic per axis, :math:`H_i \\leftarrow \\beta_2 H_i + (1 - \\beta_2) G_{(i)} G_{(i)}^H`
(:math:`G_{(i)}` is :math:`G` unfolded along axis :math:`i`: its rows are the slices of that
axis), and preconditions :math:`G` by the mode products with :math:`H_i^{-1/(2k)}`; for a
matrix, :math:`L^{-1/4} G R^{-1/4}` (Gupta, Koren and Singer, 2018). Large axes are cut into
blocks of at most ``block_size``, each block with its own statistics; leaves that are too
large (or of too low an order) take the grafted first-order step instead. The direction is
grafted onto the norm of a first-order step (SGD, AdaGrad, RMSProp, Adam) per leaf, and
momentum is kept for both, as in the scalable Shampoo of Anil et al. (2020) and its optax
implementation (``distributed_shampoo``), whose argument names and defaults these follow.

Each leaf's blocks fall into at most :math:`2^k` classes of equal block shape (the full blocks
of each axis and its remainder); each class is one batch ``(N, b_0, ..., b_{k-1})``, so a
leaf's statistics, roots and products are a few batched operations, and the inverse roots of
every leaf are computed in one batch per matrix size. The step is one jitted function of the
leaves' layouts (static): called eagerly it runs as one compiled program.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import CLOSED_UNIT, UNIT, MissingArgumentError
from gradtx._core.hyper import ScalarOrSchedule, Value, live, one_minus, one_minus_power, value_as
from gradtx._linalg.blocks import _layout_of, _precondition
from gradtx._transforms.shampoo_arguments import shampoo_arguments
from gradtx._transforms.shampoo_statistics import (
    Config,
    Hyper,
    decay_weights,
    diagonal_dtype,
    statistic_dtype,
    updated_roots,
    updated_statistics,
    wide_dtype,
)

_ADAGRAD_GRAFTS = ("adagrad", "adagrad_normalized")
_RMSPROP_GRAFTS = ("rmsprop", "rmsprop_normalized", "adam")
# the reference's constant in ||graft|| / (||direction|| + 1e-16) and in g / (||g|| + 1e-16)
_TINY = 1e-16

_NON_NEGATIVE = (">= 0", lambda v: v >= 0)
_POSITIVE = ("> 0", lambda v: v > 0)


# ---- the state ---------------------------------------------------------------------------------


class ScaleByShampooState(NamedTuple):
    count: jax.Array  # int32 []: updates so far (the reference's step, 0 at the first)
    # per leaf (jax.tree.leaves order; not a tree like the params, whose places Flax NNX would
    # take for params), per class of blocks, per axis: (N, b, b), >= float32; or ()
    statistics: tuple
    preconditioners: tuple  # the inverse roots, shaped as statistics
    diagonal_statistics: Any  # per leaf: |g|^2 sums or averages (AdaGrad, RMSProp, Adam grafts)
    diagonal_momentum: Any  # like the params: the graft's momentum
    momentum: Any  # like the params: the grafted Shampoo step's momentum

    # ranges particular to Shampoo: beta2 = 1 is the sum of the original Shampoo and AdaGrad
    live_ranges = {
        "beta1": UNIT,
        "beta2": CLOSED_UNIT,
        "diagonal_epsilon": _NON_NEGATIVE,
        "matrix_epsilon": _NON_NEGATIVE,
        "inverse_failure_threshold": _POSITIVE,
        "clip_by_scaled_gradient_norm": _POSITIVE,
    }


# ---- the transformation ------------------------------------------------------------------------


def _scale_by_shampoo(
    beta1: Value,
    beta2: Value,
    diagonal_epsilon: Value,
    matrix_epsilon: Value,
    weight_decay: Value | None,
    inverse_failure_threshold: Value,
    clip_by_scaled_gradient_norm: Value | None,
    *,
    block_size: int,
    start_preconditioning_step: int,
    preconditioning_compute_steps: int,
    statistics_compute_steps: int,
    best_effort_shape_interpretation: bool,
    graft_type: str,
    nesterov: bool,
    exponent_override: int,
    moving_average_for_momentum: bool,
    skip_preconditioning_dim_size_gt: int,
    precision: Any,
    tensordot_precision: Any,
    relative_matrix_epsilon: bool,
    merge_small_dims_block_size: int,
    skip_preconditioning_rank_lt: int,
    root_method: str,
    owner: str,
) -> GradientTransformation:
    fixed = dict(
        block_size=block_size,
        best_effort_shape_interpretation=best_effort_shape_interpretation,
        merge_small_dims_block_size=merge_small_dims_block_size,
        skip_preconditioning_dim_size_gt=skip_preconditioning_dim_size_gt,
        skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
        exponent_override=exponent_override,
    )
    diagonal = graft_type in _ADAGRAD_GRAFTS + _RMSPROP_GRAFTS
    hyper = Hyper(
        beta1,
        beta2,
        diagonal_epsilon,
        matrix_epsilon,
        weight_decay,
        inverse_failure_threshold,
        clip_by_scaled_gradient_norm,
    )

    def init(params):
        def statistics(p, value):
            lay = _layout_of(p.shape, fixed)
            dtype = statistic_dtype(p.dtype)
            scale = value_as(value, _tree.real_dtype(dtype)).astype(dtype)
            return tuple(
                tuple(jnp.broadcast_to(jnp.eye(b, dtype=dtype) * scale, (n, b, b)) for n, b, _ in c)
                for c in lay.statistic_shapes()
            )

        return ScaleByShampooState(
            count=_tree.zero_count(),
            statistics=tuple(statistics(p, matrix_epsilon) for p in jax.tree.leaves(params)),
            preconditioners=tuple(statistics(p, 1.0) for p in jax.tree.leaves(params)),
            diagonal_statistics=(
                jax.tree.map(lambda p: jnp.zeros(p.shape, diagonal_dtype(p.dtype)), params)
                if diagonal
                else ()
            ),
            diagonal_momentum=_tree.zeros_like(params),
            momentum=_tree.zeros_like(params),
        )

    def update(updates, state, params=None, **extra):
        trees, names = [updates, state.momentum, state.diagonal_momentum], ["updates", "state"]
        names.append("state")
        if weight_decay is not None:
            if params is None:
                raise MissingArgumentError(
                    f"{owner}: update needs params (weight_decay is added to the step before the "
                    f"momentum)"
                )
            trees.append(params)
            names.append("params")
        _tree.check_match(owner, trees, names)
        leaves, treedef = jax.tree.flatten(updates)
        layouts = tuple(_layout_of(g.shape, fixed) for g in leaves)
        stats = list(state.statistics)
        for path, g, lay, s in zip(_paths(updates), leaves, layouts, stats):
            _check_statistics(owner, path, g, lay, s)
        config = Config(
            layouts,
            start_preconditioning_step,
            preconditioning_compute_steps,
            statistics_compute_steps,
            graft_type,
            nesterov,
            moving_average_for_momentum,
            precision,
            tensordot_precision,
            relative_matrix_epsilon,
            root_method,
            weight_decay is not None,
            clip_by_scaled_gradient_norm is not None,
        )
        flat = lambda tree: treedef.flatten_up_to(tree)  # noqa: E731
        outs, diag, m_g, m_s, stats, roots = _step(
            config,
            hyper,
            state.count,
            leaves,
            stats,
            list(state.preconditioners),
            flat(state.diagonal_statistics) if diagonal else [None] * len(leaves),
            flat(state.diagonal_momentum),
            flat(state.momentum),
            flat(params) if weight_decay is not None else [None] * len(leaves),
        )
        new_state = ScaleByShampooState(
            count=_tree.saturating_increment(state.count),
            statistics=tuple(stats),
            preconditioners=tuple(roots),
            diagonal_statistics=treedef.unflatten(diag) if diagonal else (),
            diagonal_momentum=treedef.unflatten(m_g),
            momentum=treedef.unflatten(m_s),
        )
        return treedef.unflatten(outs), new_state

    return GradientTransformation(init, update)


@functools.partial(jax.jit, static_argnums=0)
def _step(cfg: Config, hp: Hyper, count, leaves, stats, roots, diag, m_g, m_s, params):
    """One step for every leaf: statistics, roots, the grafted direction and the momenta.

    Jitted (an enclosing ``jit`` inlines it): an eager step is one compiled program, not the
    hundreds of small operations of the blocks, roots and grafts.
    """
    stats = updated_statistics(cfg, hp, leaves, stats, count)
    roots = updated_roots(cfg, hp, stats, roots, count)
    outs = [
        _leaf_step(cfg, hp, *args, count)
        for args in zip(leaves, cfg.layouts, roots, diag, m_g, m_s, params)
    ]
    return tuple([o[i] for o in outs] for i in range(4)) + (stats, roots)


def _leaf_step(cfg, hp, g, lay, roots, diag, diagonal_momentum, momentum, param, count):
    """One leaf's output, graft statistics and momenta."""
    wide = wide_dtype(g.dtype)
    real = _tree.real_dtype(wide)
    x = _tree.cast(g, wide)
    graft, diag = _graft(cfg, hp, x, diag, count, real)
    if lay.merged is None:
        shampoo = graft
    else:
        direction = _precondition(x, lay, roots, cfg.tensordot_precision)
        if cfg.graft_type == "none":
            shampoo = direction
        else:
            ratio = _norms.norm(graft) / (_norms.norm(direction) + jnp.asarray(_TINY, real))
            shampoo = _tree.times(direction, ratio.astype(real))
    if cfg.decay:
        decay = _tree.times(_tree.cast(param, wide), value_as(hp.weight_decay, real))
        shampoo, graft = shampoo + decay, graft + decay
    b1 = value_as(hp.beta1, real)
    w = one_minus(hp.beta1, real) if cfg.moving_average_for_momentum else jnp.ones([], real)
    new_momentum = _tree.times(_tree.cast(momentum, wide), b1) + _tree.times(shampoo, w)
    new_diagonal = _tree.times(_tree.cast(diagonal_momentum, wide), b1) + _tree.times(graft, w)
    run = count >= cfg.start_preconditioning_step
    step = jnp.where(run, new_momentum, new_diagonal)
    if cfg.nesterov:
        step = _tree.times(jnp.where(run, shampoo, graft), w) + _tree.times(step, b1)
    return (
        step.astype(g.dtype),
        diag,
        new_diagonal.astype(diagonal_momentum.dtype),
        new_momentum.astype(momentum.dtype),
    )


def _graft(cfg, hp, x, diag, count, real):
    """The first-order step whose norm the Shampoo direction takes, and its statistics."""
    graft_type = cfg.graft_type
    if graft_type in ("sgd", "none"):
        return x, diag
    if graft_type == "sqrt_n":
        return jnp.sign(x), diag
    scaled = x
    if graft_type in ("adagrad_normalized", "rmsprop_normalized"):
        scaled = _tree.divide(x, _norms.norm(x).astype(real) + jnp.asarray(_TINY, real))
    square = _tree.abs_sq(scaled)
    if graft_type in _ADAGRAD_GRAFTS:
        diag = diag + square
        second = diag
    else:
        w1, w2 = decay_weights(hp, real)
        diag = w1 * diag + w2 * square
        second = diag
        if graft_type == "adam":  # the second moment debiased, as Adam's (t = count + 1)
            correction = one_minus_power(hp.beta2, count + 1).astype(real)
            second = diag / jnp.where(w1 == 1, jnp.ones([], real), correction)
    step = _tree.divide(scaled, jnp.sqrt(second) + value_as(hp.diagonal_epsilon, real))
    if graft_type in _RMSPROP_GRAFTS and cfg.clip:
        size = jnp.asarray(math.sqrt(max(x.size, 1)), real)
        rms = _norms.norm(step).astype(real) / size
        limit = value_as(hp.clip_by_scaled_gradient_norm, real)
        step = _tree.divide(step, jnp.maximum(jnp.ones([], real), rms / limit))
    return step, diag


def _paths(tree) -> list[str]:
    return [_tree.path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _check_statistics(owner, path, g, lay, stats) -> None:
    want = tuple(tuple(shape for shape in shapes) for shapes in lay.statistic_shapes())
    got = tuple(tuple(tuple(m.shape) for m in per_axis) for per_axis in stats)
    if got != want:
        raise ValueError(
            f"{owner}: the updates leaf {path!r} of shape {tuple(g.shape)} needs statistics of "
            f"shapes {want}, but the state's are {got}: the state was made for other params"
        )


def scale_by_shampoo(
    block_size: int = 128,
    beta1: ScalarOrSchedule = 0.9,
    beta2: ScalarOrSchedule = 0.999,
    diagonal_epsilon: ScalarOrSchedule = 1e-10,
    matrix_epsilon: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule | None = None,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    statistics_compute_steps: int = 1,
    best_effort_shape_interpretation: bool = True,
    graft_type: str | int = "sgd",
    nesterov: bool = True,
    exponent_override: int = 0,
    *,
    moving_average_for_momentum: bool = False,
    inverse_failure_threshold: ScalarOrSchedule = 0.1,
    skip_preconditioning_dim_size_gt: int = 4096,
    clip_by_scaled_gradient_norm: ScalarOrSchedule | None = None,
    precision: lax.Precision | str | None = lax.Precision.HIGHEST,
    tensordot_precision: lax.Precision | str | None = None,
    relative_matrix_epsilon: bool = True,
    merge_small_dims_block_size: int = 4096,
    skip_preconditioning_rank_lt: int = 1,
    root_method: str = "eigh",
) -> GradientTransformation:
    r"""Shampoo's scaling: Kronecker-factored preconditioning per block, grafted, with momentum.

    Each leaf is viewed as a tensor of order :math:`k` (small axes merged, see
    ``best_effort_shape_interpretation``) and cut into blocks of at most ``block_size`` per
    axis. With :math:`t` the step (0 at the first update), per block and axis :math:`i`:

    .. math::
      H_i \leftarrow \beta_2 H_i + (1 - \beta_2)\, G_{(i)} G_{(i)}^H
      \quad (H_i = \epsilon_m I \text{ at the start}; \ \beta_2 = 1:\ H_i \mathrel{+}= G_{(i)}
      G_{(i)}^H),

    every ``statistics_compute_steps`` steps (:math:`G_{(i)}`: the block unfolded along axis
    :math:`i`), and every ``preconditioning_compute_steps`` steps
    :math:`P_i = (H_i + r I)^{-1/p}` by :func:`gradtx.matrix_inverse_pth_root`, with
    :math:`p = 2k` (``exponent_override`` if nonzero) and the ridge
    :math:`r = \epsilon_m \lambda_{\max}(H_i)` (``relative_matrix_epsilon``; else
    :math:`\epsilon_m`). The direction is :math:`D = G \times_1 P_1 \cdots \times_k P_k`,
    for a matrix :math:`L^{-1/4} G R^{-1/4}`. It takes, per leaf, the norm of a first-order
    step :math:`A` (``graft_type``):

    .. math::
      S = \frac{\|A\|}{\|D\| + 10^{-16}}\, D, \qquad
      m_t = \beta_1 m_{t-1} + w\,(S + \lambda \theta), \quad
      a_t = \beta_1 a_{t-1} + w\,(A + \lambda \theta),

    with :math:`w = 1` (:math:`1 - \beta_1` with ``moving_average_for_momentum``) and
    :math:`\lambda` = ``weight_decay`` (coupled: in both momenta). The output is
    :math:`m_t` from step ``start_preconditioning_step`` on and :math:`a_t` before, or with
    ``nesterov`` :math:`\beta_1 m_t + w\,(S + \lambda\theta)` (and the same of :math:`a`). A
    leaf with an axis above ``skip_preconditioning_dim_size_gt``, of rank below
    ``skip_preconditioning_rank_lt``, or empty, is not preconditioned: :math:`S = A`. Grafts:

    - ``"sgd"`` (default): :math:`A = g`; ``"sqrt_n"``: :math:`A = \mathrm{sign}(g)`;
    - ``"adagrad"``: :math:`v \mathrel{+}= g^2`, :math:`A = g / (\sqrt v + \epsilon_d)`;
    - ``"rmsprop"``: :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`,
      :math:`A = g / (\sqrt v + \epsilon_d)`, then divided by
      :math:`\max(1, \mathrm{RMS}(A) / c)` with ``clip_by_scaled_gradient_norm`` = c;
    - ``"adam"``: as ``"rmsprop"`` with Adam's debiased :math:`v / (1 - \beta_2^{t+1})`
      (its first moment is the momentum above);
    - ``"adagrad_normalized"``, ``"rmsprop_normalized"``: those of :math:`g / (\|g\| +
      10^{-16})`;
    - ``"none"``: :math:`S = D` (the paper's Algorithm 1, no grafting), :math:`A = g`.

    The defaults and names are those of ``distributed_shampoo`` (the optax-shampoo package),
    whose ``GraftingType`` values 1 to 6 are accepted for ``graft_type``; its trajectories are
    matched in float64 (tests/test_shampoo.py). Complex leaves use :math:`G G^H`, Hermitian
    roots and :math:`|g|^2`.

    Args:
      block_size: the largest block along an axis (0: no blocks). Default 128. Fixed.
      beta1: :math:`\beta_1` in [0, 1), the momentum. Default 0.9.
      beta2: :math:`\beta_2` in [0, 1], the statistics' decay (1: sums). Default 0.999.
      diagonal_epsilon: :math:`\epsilon_d` >= 0 of the AdaGrad, RMSProp and Adam grafts.
        Default 1e-10.
      matrix_epsilon: :math:`\epsilon_m` >= 0: the statistics start at :math:`\epsilon_m I`
        (its value at init) and the roots' ridge is relative to it. Default 1e-6.
      weight_decay: :math:`\lambda` >= 0 added to both steps before the momentum (needs
        params), or None (default: none, no params needed).
      start_preconditioning_step: the first step (counted from 0) that takes the Shampoo
        momentum; before it the graft's. Default 5. Fixed.
      preconditioning_compute_steps: steps between root computations (at t = 0, k, 2k...).
        Default 1. Fixed.
      statistics_compute_steps: steps between statistics updates. Default 1. Fixed.
      best_effort_shape_interpretation: merge adjacent axes while their product is at most
        ``merge_small_dims_block_size`` (axes of size 1 dropped). Default True. Fixed.
      graft_type: one of ``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"rmsprop_normalized"``,
        ``"sqrt_n"``, ``"adagrad_normalized"`` (or the reference's codes 1 to 6), ``"adam"``,
        ``"none"``. Default ``"sgd"``, the reference's.
      nesterov: Nesterov momentum. Default True.
      exponent_override: p for every root, or 0 (default) for :math:`2k`.
      moving_average_for_momentum: :math:`w = 1 - \beta_1` (an EMA) instead of 1. Default
        False.
      inverse_failure_threshold: with ``root_method="newton"``, a root whose error is at
        least this (or NaN) is not used: the previous one is kept. Default 0.1. Any method
        keeps the previous root in place of one that is not finite.
      skip_preconditioning_dim_size_gt: leaves with an axis longer than this take the graft's
        step. Default 4096. Fixed.
      clip_by_scaled_gradient_norm: c > 0 above, or None (default). RMSProp and Adam grafts.
      precision: the ``jax.lax.Precision`` of the roots' matrix products. Default HIGHEST.
      tensordot_precision: that of the statistics and the preconditioning products. Default
        None (JAX's default).
      relative_matrix_epsilon: the ridge relative to the largest eigenvalue (default True).
      merge_small_dims_block_size: the largest merged axis. Default 4096. Fixed.
      skip_preconditioning_rank_lt: leaves of a lower rank take the graft's step. Default 1
        (scalars). Fixed.
      root_method: ``"eigh"`` (default: exact roots) or ``"newton"`` (the reference's coupled
        Newton iteration), see :func:`gradtx.matrix_inverse_pth_root`.

    Returns:
      A :class:`GradientTransformation` whose updates are the step before the learning rate
      (``gradtx.shampoo`` scales them by :math:`-\eta`). Its state keeps, per leaf (a tuple in
      ``jax.tree.leaves`` order), the statistics and roots per class of equal blocks (shape
      ``(blocks, b, b)``, at least float32), the graft's statistics and both momenta.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_shampoo(
      ...     beta1=0.0,
      ...     matrix_epsilon=0.0,
      ...     start_preconditioning_step=0,
      ...     best_effort_shape_interpretation=False,
      ... )
      >>> g = {"w": jnp.array([[1.0, 0.0], [0.0, 4.0]])}
      >>> u, state = tx.update(g, tx.init(g))
      >>> # L^-1/4 g R^-1/4 equalizes the two directions, with the norm of g (4.123)
      >>> [round(x, 3) for x in jnp.diag(u["w"]).tolist()], float(u["w"][0, 1])
      ([2.915, 2.915], 0.0)
      >>> state.inner_state.statistics[0][0][0].shape  # leaf w: one block, (blocks, rows, rows)
      (1, 2, 2)

    References:
      Gupta, Koren and Singer, *Shampoo: Preconditioned Stochastic Tensor Optimization*, ICML
      2018 (Algorithms 1 and 2); Anil, Gupta, Koren, Regan and Singer, *Scalable Second Order
      Optimization for Deep Learning*, 2020 (arXiv:2002.09018): blocks, grafting, the relative
      ridge; Agarwal, Anil, Hazan, Koren and Zhang, *Disentangling Adaptive Gradient Methods
      from Learning Rates*, 2020 (grafting).
    """
    owner = "scale_by_shampoo"
    fixed = shampoo_arguments(
        owner,
        block_size=block_size,
        start_preconditioning_step=start_preconditioning_step,
        preconditioning_compute_steps=preconditioning_compute_steps,
        statistics_compute_steps=statistics_compute_steps,
        best_effort_shape_interpretation=best_effort_shape_interpretation,
        graft_type=graft_type,
        nesterov=nesterov,
        exponent_override=exponent_override,
        moving_average_for_momentum=moving_average_for_momentum,
        skip_preconditioning_dim_size_gt=skip_preconditioning_dim_size_gt,
        precision=precision,
        tensordot_precision=tensordot_precision,
        relative_matrix_epsilon=relative_matrix_epsilon,
        merge_small_dims_block_size=merge_small_dims_block_size,
        skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
        root_method=root_method,
    )
    build = functools.partial(_scale_by_shampoo, **fixed)
    return live(
        owner,
        build,
        optional=("weight_decay", "clip_by_scaled_gradient_norm"),
        ranges=ScaleByShampooState.live_ranges,
        beta1=beta1,
        beta2=beta2,
        diagonal_epsilon=diagonal_epsilon,
        matrix_epsilon=matrix_epsilon,
        weight_decay=weight_decay,
        inverse_failure_threshold=inverse_failure_threshold,
        clip_by_scaled_gradient_norm=clip_by_scaled_gradient_norm,
    )
