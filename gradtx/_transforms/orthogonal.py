"""Muon's pieces: momentum orthogonalized per matrix, and the shape-dependent scale.

Each leaf is viewed as a batch of matrices (:mod:`gradtx._linalg.view`); the momentum of each
matrix is replaced by its approximate polar factor (:mod:`gradtx._linalg.newton_schulz`), whose
singular values are all near 1, then scaled by a factor of the matrix's shape so that one
learning rate suits every width.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import UNIT, _float_dtype, check_dtype, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, one_minus, per_dtype, scalar, value_as
from gradtx._linalg.newton_schulz import (
    MUON_COEFFS,
    NS_COEFFS_PRESETS,
    check_coefficients,
    check_preconditioning,
    compute_dtype,
    newton_schulz_many,
)
from gradtx._linalg.view import (
    MatrixDimensionNumbers,
    as_matrices,
    leaf_dimension_numbers,
    matrix_shape,
)
from gradtx._transforms.momentum import debias_step, ema_step


def _leaf_matrices(owner: str, name: str, spec: Any, tree: Any) -> list[Any]:
    """Per leaf of ``tree``, its dimension numbers (a rank-2 leaf: its own); an error names a
    leaf that is not a matrix."""
    specs = leaf_dimension_numbers(owner, name, spec, tree)
    paths = [_tree.path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    out = []
    for path, x, s in zip(paths, jax.tree.leaves(tree), specs):
        if s is None and len(x.shape) != 2:
            raise ValueError(
                f"{owner}: the leaf {path!r} of shape {tuple(x.shape)} is not a matrix; give its "
                f"{name} (MatrixDimensionNumbers), or use gradtx.muon, which sends leaves that "
                f"are not matrices to AdamW"
            )
        out.append(MatrixDimensionNumbers() if s is None else s)
    return out


# ---- scale_by_muon ---------------------------------------------------------------------------


class MuonState(NamedTuple):
    """The state of :func:`gradtx.scale_by_muon`: optax's ``MuonState``, fields in its order."""

    count: jax.Array  # int32 []: updates so far (the bias correction's step)
    mu: Any  # like the params (mu_dtype if given): the momentum
    # float32 (float64 with x64), (3,) for every step or (steps, 3) one row per step: the
    # Newton-Schulz coefficients the update reads, as optax keeps them (a state converted from
    # optax's runs with its own)
    ns_coeffs: jax.Array

    # Muon's beta is a decay in [0, 1): "beta" means another thing elsewhere (optimism)
    live_ranges = {"beta": UNIT}


def _steps_table(owner: str, ns_coeffs: jax.Array, ns_steps: int) -> jax.Array:
    """The (steps, 3) coefficients of a state's ``ns_coeffs``: a row repeated ``ns_steps``
    times, or the table's rows (one step each, as in optax)."""
    shape = tuple(ns_coeffs.shape)
    if len(shape) not in (1, 2) or shape[-1] != 3:
        raise ValueError(
            f"{owner}: the state's ns_coeffs must have shape (3,) or (steps, 3), got {shape}"
        )
    if len(shape) == 1:
        return jnp.broadcast_to(ns_coeffs, (ns_steps, 3))
    return ns_coeffs


def _scale_by_muon(
    beta: Value,
    eps: Value,
    *,
    coefficients: np.ndarray,
    ns_steps: int,
    preconditioning: str,
    mu_dtype: Any,
    nesterov: bool,
    adaptive: bool,
    bias_correction: bool,
    dimension_numbers: Any,
    dtype: Any,
    owner: str,
) -> GradientTransformation:
    def init(params):
        _leaf_matrices(owner, "weight_dimension_numbers", dimension_numbers, params)
        return MuonState(
            _tree.zero_count(),
            _tree.zeros_like(params, mu_dtype),
            jnp.asarray(coefficients, _float_dtype()),
        )

    def update(updates, state, params=None, **extra):
        _tree.check_match(owner, (state.mu, updates), ("state", "updates"))
        specs = _leaf_matrices(owner, "weight_dimension_numbers", dimension_numbers, updates)
        table = _steps_table(owner, state.ns_coeffs, ns_steps)
        count = _tree.saturating_increment(state.count)
        mu = _tree.map(ema_step(beta), updates, state.mu, owner=owner)
        identity = lambda x: x  # noqa: E731
        debias_now = debias_step(beta, count) if bias_correction else identity
        if nesterov:
            debias_ahead = (
                debias_step(beta, _tree.saturating_increment(count))
                if bias_correction
                else identity
            )
            weights = per_dtype(lambda d: (value_as(beta, d), one_minus(beta, d)))

            def direction(m, g):
                old, new = weights(m.dtype)
                return old * debias_ahead(m) + new * debias_now(_tree.cast(g, m.dtype))

            directions = jax.tree.map(direction, mu, updates)
        else:
            directions = jax.tree.map(debias_now, mu)
        eps_value = scalar(eps)
        flat_u, treedef = jax.tree.flatten(directions)
        flat_g = treedef.flatten_up_to(updates)
        views = [
            as_matrices(_tree.cast(u, compute_dtype(u.dtype, dtype)), spec)
            for u, spec in zip(flat_u, specs)
        ]
        matrices = [m for m, _ in views]
        orthogonal = newton_schulz_many(matrices, table, preconditioning, eps_value)
        if adaptive:
            # each scaled by its dual norm <u, O>: Re sum conj(u) O over each matrix
            orthogonal = [
                _tree.times(o, jnp.sum((m.conj() * o).real, axis=(1, 2), keepdims=True))
                for m, o in zip(matrices, orthogonal)
            ]
        out = treedef.unflatten(
            [restore(o).astype(g.dtype) for (_, restore), o, g in zip(views, orthogonal, flat_g)]
        )
        return out, MuonState(count, _tree.cast_like(mu, state.mu), state.ns_coeffs)

    return GradientTransformation(init, update)


def muon_arguments(
    owner: str,
    ns_coeffs: Any,
    ns_steps: Any,
    mu_dtype: Any,
    nesterov: Any,
    adaptive: Any,
    preconditioning: Any,
    bias_correction: Any,
    dtype: Any,
) -> dict[str, Any]:
    """The validated arguments of scale_by_muon that are fixed when it is built; the
    coefficients as its state keeps them (as optax does): the row (a, b, c) given for every
    step, or the ``ns_steps`` rows of a table that the steps use."""
    table = check_coefficients(owner, ns_coeffs, ns_steps)
    given = NS_COEFFS_PRESETS[ns_coeffs] if isinstance(ns_coeffs, str) else ns_coeffs
    row = np.asarray(given, np.float64)
    return dict(
        coefficients=row if row.ndim == 1 else table,
        ns_steps=len(table),
        preconditioning=check_preconditioning(owner, preconditioning),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        nesterov=check_flag(owner, "nesterov", nesterov),
        adaptive=check_flag(owner, "adaptive", adaptive),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
        dtype=check_dtype(owner, "dtype", dtype),
        owner=owner,
    )


def scale_by_muon(
    ns_coeffs: Any = MUON_COEFFS,
    ns_steps: int = 5,
    beta: ScalarOrSchedule = 0.95,
    eps: ScalarOrSchedule = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
    bias_correction: bool = True,
    dtype: Any = None,
) -> GradientTransformation:
    r"""Muon's scaling: the momentum of each matrix, orthogonalized by Newton–Schulz.

    For :math:`t \ge 1`, with :math:`\hat x_t = x / (1 - \beta^t)` when ``bias_correction``:

    .. math::
      m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad
      u_t = \beta\, \hat m_{t+1 \mid t} + (1 - \beta)\, \hat g_t \ \ \text{(Nesterov)}
      \quad\text{or}\quad u_t = \hat m_t,

    where :math:`\hat m_{t+1 \mid t} = m_t / (1 - \beta^{t+1})`, then per matrix
    :math:`O_t = \mathrm{NS}(u_t)` (:func:`gradtx.orthogonalize_via_newton_schulz`), and with
    ``adaptive`` :math:`O_t \leftarrow \mathrm{Re}\langle u_t, O_t\rangle\, O_t` (the dual
    norm, Bernstein and Newhouse, 2024). The output is :math:`O_t`. Newton–Schulz divides by
    the norm, so the bias correction only moves where ``eps`` and ``adaptive`` see the
    magnitude; ``bias_correction=False`` with ``eps=0`` is PyTorch's Muon
    (:math:`u_t = \beta m_t + (1-\beta) g_t`; it divides by :math:`\max(\|u\|, 10^{-7})`),
    the default is optax's.

    Args:
      ns_coeffs: Newton–Schulz's (a, b, c), a table of them with one row per step, or the
        name of a set, ``"standard"`` (Muon's) or ``"dion"`` (Ahn et al., 2025: five rows).
        Default Muon's (3.4445, -4.7750, 2.0315). The state keeps them, as optax's does: the
        row, or the table's last ``ns_steps`` rows (:class:`gradtx.contrib.MuonState`).
      ns_steps: the number of Newton–Schulz steps, fixed when built. Default 5.
      beta: β in [0, 1), the momentum's decay. Default 0.95.
      eps: ε >= 0 added to each matrix's norm before the iteration (with ``"schatten"`` and
        ``"aol"``: the floor of the norm and of each row's scale). Default 1e-8, optax's.
      mu_dtype: dtype of the momentum (default: the params').
      nesterov: the Nesterov direction (default, as in the paper) or the momentum itself.
      adaptive: scale each orthogonalized matrix by its dual norm. Default False.
      preconditioning: the scaling before the iteration: ``"frobenius"`` (default),
        ``"spectral"`` (an SVD per matrix), ``"schatten"`` (the Schatten-4 norm) or ``"aol"``
        (AOL's diagonal row scaling), as in
        :func:`gradtx.orthogonalize_via_newton_schulz`. The last two lift the small singular
        values for no extra matrix product; with AOL one Newton–Schulz step fewer often
        suffices (Boissin et al., 2025).
      weight_dimension_numbers: which axes of each leaf are a matrix's rows and columns: None
        (every leaf is a matrix: rank 2), one :class:`gradtx.MatrixDimensionNumbers` for every
        leaf, a tree of them with the params' structure, or a function of the params returning
        one. A leaf that is not a matrix is an error: :func:`gradtx.muon` sends such leaves to
        AdamW.
      bias_correction: divide the momentum and gradient by :math:`1 - \beta^t` as optax does
        (default True); False is PyTorch's.
      dtype: the dtype the iteration runs in (default: the momentum's, at least float32).

    Returns:
      A :class:`GradientTransformation` with :class:`gradtx.contrib.MuonState` state (inside
      the live hyperparameters' :class:`gradtx.HyperState`); the updates have the gradients'
      dtypes.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_muon()
      >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, 0.5]])}
      >>> updates, state = tx.update(g, tx.init(g))
      >>> jnp.linalg.svd(updates["w"], compute_uv=False).round(2)
      Array([1.04, 0.71], dtype=float32)

    References:
      Jordan, Jin, Boza, You, Cesista, Newhouse and Bernstein, *Muon: An optimizer for hidden
      layers in neural networks*, 2024 (kellerjordan.github.io/posts/muon); Bernstein and
      Newhouse, *Old Optimizer, New Norm: An Anthology*, 2024; Boissin et al., *Turbo-Muon:
      Accelerating Orthogonality-Based Optimization with Pre-Conditioning*, 2025; Ahn et al.,
      *Dion: Distributed Orthonormalized Updates*, 2025.
    """
    owner = "scale_by_muon"
    fixed = muon_arguments(
        owner,
        ns_coeffs,
        ns_steps,
        mu_dtype,
        nesterov,
        adaptive,
        preconditioning,
        bias_correction,
        dtype,
    )
    build = functools.partial(_scale_by_muon, dimension_numbers=weight_dimension_numbers, **fixed)
    return live(owner, build, ranges=MuonState.live_ranges, beta=beta, eps=eps)


# ---- scale_by_shape --------------------------------------------------------------------------


def shape_factor(shape, spec, consistent_rms: Any) -> Any:
    """The factor of one leaf: ``sqrt(max(1, cols / rows))``, or ``consistent_rms *
    sqrt(max(rows, cols))`` (rows: the reduction axes, the fan-in)."""
    _, rows, cols = matrix_shape(shape, spec)
    if consistent_rms is None:
        return math.sqrt(max(1.0, cols / rows)) if rows else 1.0
    return math.sqrt(max(rows, cols))


def _scale_by_shape(consistent_rms: Value | None, *, dimension_numbers: Any, owner: str):
    def init(params):
        _leaf_matrices(owner, "weight_dimension_numbers", dimension_numbers, params)
        return ()

    def update(updates, state, params=None, **extra):
        specs = _leaf_matrices(owner, "weight_dimension_numbers", dimension_numbers, updates)
        flat, treedef = jax.tree.flatten(updates)

        def scaled(u, spec):
            dtype = _tree.real_dtype(_tree.accumulation_dtype(u.dtype))
            factor = jnp.asarray(shape_factor(u.shape, spec, consistent_rms), dtype)
            if consistent_rms is not None:
                factor = factor * value_as(consistent_rms, dtype)
            return _tree.times(_tree.cast(u, _tree.wider(u.dtype, dtype)), factor).astype(u.dtype)

        return treedef.unflatten([scaled(u, s) for u, s in zip(flat, specs)]), state

    return GradientTransformation(init, update)


def scale_by_shape(
    weight_dimension_numbers: Any = None,
    consistent_rms: ScalarOrSchedule | None = None,
) -> GradientTransformation:
    r"""Scales each matrix's update by a factor of its shape, for one learning rate at every width.

    For a matrix with ``rows`` (the fan-in: the product of the reduction axes) and ``cols``
    (the fan-out):

    .. math::
      u \leftarrow \sqrt{\max(1, \mathrm{cols} / \mathrm{rows})}\; u
      \quad\text{or, with } \rho = \texttt{consistent\_rms},\quad
      u \leftarrow \rho \sqrt{\max(\mathrm{rows}, \mathrm{cols})}\; u .

    The first is Muon's original scale (Jordan et al., 2024); the second gives an orthogonal
    update the RMS ρ of an AdamW update (Liu et al., 2025, recommend ρ = 0.2), PyTorch's
    ``adjust_lr_fn="match_rms_adamw"``.

    Args:
      weight_dimension_numbers: which axes are each leaf's rows and columns, as in
        :func:`gradtx.scale_by_muon` (None: every leaf is a rank-2 matrix).
      consistent_rms: ρ >= 0, or None (default) for the original scale. Live.

    Returns:
      A stateless :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> u = {"w": jnp.ones((2, 8))}  # fan-in 2, fan-out 8
      >>> tx = gradtx.scale_by_shape()
      >>> float(tx.update(u, tx.init(u))[0]["w"][0, 0])  # sqrt(8 / 2)
      2.0
      >>> tx = gradtx.scale_by_shape(consistent_rms=0.2)
      >>> round(float(tx.update(u, tx.init(u))[0]["w"][0, 0]), 4)  # 0.2 sqrt(8)
      0.5657

    References:
      Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024; Liu et
      al., *Muon is Scalable for LLM Training*, 2025, section 2.2.
    """
    owner = "scale_by_shape"
    build = functools.partial(
        _scale_by_shape, dimension_numbers=weight_dimension_numbers, owner=owner
    )
    return live(owner, build, optional=("consistent_rms",), consistent_rms=consistent_rms)
