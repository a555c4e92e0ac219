r"""SOAP's piece: Adam run in the eigenbasis of Shampoo's factor statistics.

Each leaf is viewed as a batch of matrices (:mod:`gradtx._linalg.view`). For a matrix gradient
:math:`G` (rows × columns) two statistics are averaged, :math:`L \approx E[G G^T]` and
:math:`R \approx E[G^T G]` (Shampoo's Kronecker factors); their eigenvectors :math:`Q_L, Q_R`
rotate the gradient to :math:`Q_L^T G Q_R`, a basis in which Adam's diagonal second moment
captures what Shampoo's full factors do. The bases are found once by an eigendecomposition and
then followed by one step of power iteration with a QR every ``precondition_frequency`` steps,
chosen by a ``lax.switch`` inside the step, so that a step compiles once.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import UNIT, check_count, check_dtype, check_flag
from gradtx._core.hyper import (
    ScalarOrSchedule,
    Value,
    live,
    one_minus,
    one_minus_power,
    per_dtype,
    value_as,
)
from gradtx._linalg import lapack as _lapack
from gradtx._linalg.view import as_matrices, leaf_dimension_numbers, matrix_shape

_NO_COMPLEX = (
    "SOAP is implemented for real params only (its reference, the authors' SOAP, refuses "
    "complex ones)"
)


class Factor(NamedTuple):
    """One side's statistic and eigenbasis, for each matrix of a leaf."""

    stats: jax.Array  # (batch, n, n), float32 at least: the average of G G^T (or G^T G)
    basis: jax.Array  # (batch, n, n), same dtype: its eigenvectors, by decreasing eigenvalue


class ScaleBySoapState(NamedTuple):
    count: jax.Array  # int32 []: updates so far; the first only gathers statistics
    mu: Any  # like the params (mu_dtype if given): Adam's first moment, in the eigenbasis
    nu: Any  # like the params: Adam's second moment, in the eigenbasis
    left: tuple  # per leaf (jax.tree.leaves order): the rows' Factor, or None without one
    right: tuple  # per leaf: the columns' Factor, or None

    # shampoo_beta is a decay in [0, 1), a name no other transformation has
    live_ranges = {"shampoo_beta": UNIT}


def _view(x: jax.Array, spec: Any) -> tuple[jax.Array, Any]:
    """``x`` as (batch, rows, columns) matrices and the function that undoes it: a rank-2 leaf
    or one with dimension numbers through :func:`gradtx.as_matrices`, a vector or a scalar as
    one row."""
    if spec is None and x.ndim < 2:
        shape = x.shape
        return x.reshape(1, 1, x.size), lambda m: m.reshape(shape)
    return as_matrices(x, spec)


class _Layout(NamedTuple):
    """How one leaf is seen: its dimension numbers and its matrices' shape (batch, rows,
    columns), and which of their sides have a factor."""

    spec: Any
    shape: tuple[int, int, int]
    left: bool
    right: bool


def _layouts(
    owner: str, spec: Any, tree: Any, precondition_1d: bool, max_precond_dim: int
) -> list[_Layout]:
    specs = leaf_dimension_numbers(owner, "weight_dimension_numbers", spec, tree)
    paths = [_tree.path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    out = []
    for path, x, s in zip(paths, jax.tree.leaves(tree), specs):
        shape = tuple(x.shape)
        if s is None and len(shape) > 2:
            raise ValueError(
                f"{owner}: the leaf {path!r} of shape {shape} has rank {len(shape)}; give its "
                f"weight_dimension_numbers (MatrixDimensionNumbers) to say which axes are its "
                f"matrices' rows and columns"
            )
        vector = s is None and len(shape) < 2
        if vector:
            batch, rows, cols = 1, 1, math.prod(shape)
        else:
            batch, rows, cols = matrix_shape(shape, s)
        # a side of size 1 has the trivial eigenbasis; one above max_precond_dim keeps the
        # identity (SOAP's one-sided preconditioning); a vector's one side only if asked
        fits = lambda n: 1 < n <= max_precond_dim  # noqa: E731
        out.append(
            _Layout(
                s, (batch, rows, cols), fits(rows), fits(cols) and (precondition_1d or not vector)
            )
        )
    return out


# ---- the linear algebra of one leaf's matrices (batch, rows, columns) -------------------------


def _rotate(x: jax.Array, left: jax.Array | None, right: jax.Array | None) -> jax.Array:
    """Into the eigenbasis: ``Q_L^T x Q_R`` (a missing side is the identity)."""
    if left is not None:
        x = jnp.matmul(jnp.swapaxes(left, -1, -2), x)
    if right is not None:
        x = jnp.matmul(x, right)
    return x


def _rotate_back(x: jax.Array, left: jax.Array | None, right: jax.Array | None) -> jax.Array:
    """Out of the eigenbasis: ``Q_L x Q_R^T``."""
    if left is not None:
        x = jnp.matmul(left, x)
    if right is not None:
        x = jnp.matmul(x, jnp.swapaxes(right, -1, -2))
    return x


def eigenbasis(stats: jax.Array) -> jax.Array:
    """The eigenvectors of symmetric ``stats`` (batch, n, n) as columns, by decreasing
    eigenvalue (``eigh`` gives them increasing)."""
    return _lapack.eigh(stats)[1][..., ::-1]


def power_step(stats: jax.Array, basis: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step of power iteration from ``basis`` towards the eigenvectors of ``stats``.

    The columns are first put in decreasing order of their Rayleigh quotients
    :math:`q_i^T S q_i` (the eigenvalue estimates), since the QR orthogonalizes them in order:
    the largest keeps its direction best. Returns the new basis, ``QR(S Q P)``'s Q, and the
    permutation ``P`` (batch, n) that the second moment's coordinates must follow.
    """
    product = jnp.matmul(stats, basis)
    estimates = jnp.sum(basis * product, axis=-2)
    order = jnp.argsort(estimates, axis=-1, descending=True)
    product = jnp.take_along_axis(product, order[..., None, :], axis=-1)
    return _lapack.qr(product)[0], order


def _zero_factor(batch: int, n: int, dtype: Any) -> Factor:
    eye = jnp.broadcast_to(jnp.eye(n, dtype=dtype), (batch, n, n))
    return Factor(jnp.zeros((batch, n, n), dtype), eye)


# ---- the three ways a step treats the bases (lax.switch's branches: module-level functions,
# so that an eager step finds them compiled) ---------------------------------------------------


def _eigendecompose(operands):
    sl, sr, bl, br, ms, vs = operands
    new = lambda s: None if s is None else eigenbasis(s)  # noqa: E731
    return [new(s) for s in sl], [new(s) for s in sr], ms, vs


def _refresh(operands):
    out_l, out_r, out_m, out_v = [], [], [], []
    for s_l, s_r, q_l, q_r, m, v in zip(*operands):
        new_l = new_r = None
        if s_l is not None:
            new_l, order = power_step(s_l, q_l)
            v = jnp.take_along_axis(v, order[..., :, None], axis=-2)
        if s_r is not None:
            new_r, order = power_step(s_r, q_r)
            v = jnp.take_along_axis(v, order[..., None, :], axis=-1)
        # the first moment follows its basis: back to the gradients' basis, into the new
        out_m.append(_rotate(_rotate_back(m, q_l, q_r), new_l, new_r))
        out_l.append(new_l)
        out_r.append(new_r)
        out_v.append(v)
    return out_l, out_r, out_m, out_v


def _keep(operands):
    sl, sr, bl, br, ms, vs = operands
    return bl, br, ms, vs


_BRANCHES = (_eigendecompose, _refresh, _keep)


# ---- scale_by_soap ---------------------------------------------------------------------------


def _scale_by_soap(
    b1: Value,
    b2: Value,
    shampoo_beta: Value | None,
    eps: Value,
    *,
    precondition_frequency: int,
    max_precond_dim: int,
    precondition_1d: bool,
    bias_correction: bool,
    mu_dtype: Any,
    dimension_numbers: Any,
    owner: str,
) -> GradientTransformation:
    decay = b2 if shampoo_beta is None else shampoo_beta

    def layouts(tree):
        return _layouts(owner, dimension_numbers, tree, precondition_1d, max_precond_dim)

    def init(params):
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)
        left, right = [], []
        for x, lay in zip(jax.tree.leaves(params), layouts(params)):
            batch, rows, cols = lay.shape
            dtype = _tree.accumulation_dtype(x.dtype)
            left.append(_zero_factor(batch, rows, dtype) if lay.left else None)
            right.append(_zero_factor(batch, cols, dtype) if lay.right else None)
        return ScaleBySoapState(
            _tree.zero_count(),
            _tree.zeros_like(params, mu_dtype),
            _tree.zeros_like(params),
            tuple(left),
            tuple(right),
        )

    def update(updates, state, params=None, **extra):
        _tree.check_match(owner, (state.mu, updates), ("state", "updates"))
        lays = layouts(updates)
        flat_g, treedef = jax.tree.flatten(updates)
        flat_mu = treedef.flatten_up_to(state.mu)
        flat_nu = treedef.flatten_up_to(state.nu)
        count = _tree.saturating_increment(state.count)
        # the first update only gathers the statistics and finds their eigenbases; Adam's
        # count starts at the second
        first = count == 1
        adam_count = jnp.maximum(count - 1, 1)
        debias1 = 1 / one_minus_power(b1, adam_count) if bias_correction else None
        debias2 = 1 / one_minus_power(b2, adam_count) if bias_correction else None

        def scalars(dtype):
            out = dict(
                b1=value_as(b1, dtype),
                c1=one_minus(b1, dtype),
                b2=value_as(b2, dtype),
                c2=one_minus(b2, dtype),
                decay=value_as(decay, dtype),
                complement=one_minus(decay, dtype),
                eps=value_as(eps, dtype),
            )
            if bias_correction:
                out.update(d1=debias1.astype(dtype), d2=debias2.astype(dtype))
            return out

        at = per_dtype(scalars)

        def average(factor, gram, h):
            if factor is None:
                return None
            return h["decay"] * factor.stats + h["complement"] * gram

        def leaf_step(g, mu, nu, lay, fl, fr):
            dtype = _tree.accumulation_dtype(g.dtype)
            h = at(dtype)
            gm, restore = _view(_tree.cast(g, dtype), lay.spec)
            ql = None if fl is None else fl.basis
            qr = None if fr is None else fr.basis
            rotated = _rotate(gm, ql, qr)
            m = h["b1"] * _view(_tree.cast(mu, dtype), lay.spec)[0] + h["c1"] * rotated
            v = h["b2"] * _view(_tree.cast(nu, dtype), lay.spec)[0] + h["c2"] * rotated * rotated
            if bias_correction:
                step = (m * h["d1"]) / (jnp.sqrt(v * h["d2"]) + h["eps"])
            else:
                step = m / (jnp.sqrt(v) + h["eps"])
            gt = jnp.swapaxes(gm, -1, -2)
            return (
                _rotate_back(step, ql, qr),
                m,
                v,
                average(fl, jnp.matmul(gm, gt), h),
                average(fr, jnp.matmul(gt, gm), h),
                restore,
            )

        leaves = zip(flat_g, flat_mu, flat_nu, lays, state.left, state.right)
        steps = [leaf_step(*leaf) for leaf in leaves]
        directions, mus, nus, stats_l, stats_r, undo = (
            [step[i] for step in steps] for i in range(6)
        )
        bases_l = [None if f is None else f.basis for f in state.left]
        bases_r = [None if f is None else f.basis for f in state.right]

        # the reference's schedule: the eigendecomposition at the first update, then a power
        # step after Adam's steps 0 (mod precondition_frequency)
        refreshing = (count > 1) & ((count - 1) % precondition_frequency == 0)
        branch = jnp.where(first, 0, jnp.where(refreshing, 1, 2))
        operands = (stats_l, stats_r, bases_l, bases_r, mus, nus)
        if any(x is not None for x in stats_l + stats_r):
            bases_l, bases_r, mus, nus = jax.lax.switch(branch, _BRANCHES, operands)

        def finish(x, restore, like):
            x = jnp.where(first, jnp.zeros_like(x), x)
            return restore(x).astype(like.dtype)

        out = [finish(d, r, g) for d, r, g in zip(directions, undo, flat_g)]
        new_mu = [finish(m, r, old) for m, r, old in zip(mus, undo, flat_mu)]
        new_nu = [finish(v, r, old) for v, r, old in zip(nus, undo, flat_nu)]
        factor = lambda s, q: None if s is None else Factor(s, q.astype(s.dtype))  # noqa: E731
        new_state = ScaleBySoapState(
            count,
            treedef.unflatten(new_mu),
            treedef.unflatten(new_nu),
            tuple(factor(s, q) for s, q in zip(stats_l, bases_l)),
            tuple(factor(s, q) for s, q in zip(stats_r, bases_r)),
        )
        return treedef.unflatten(out), new_state

    return GradientTransformation(init, update)


def soap_arguments(
    owner: str,
    precondition_frequency: Any,
    max_precond_dim: Any,
    precondition_1d: Any,
    bias_correction: Any,
    mu_dtype: Any,
) -> dict[str, Any]:
    """The validated arguments of scale_by_soap that are fixed when it is built."""
    return dict(
        precondition_frequency=check_count(owner, "precondition_frequency", precondition_frequency),
        max_precond_dim=check_count(owner, "max_precond_dim", max_precond_dim),
        precondition_1d=check_flag(owner, "precondition_1d", precondition_1d),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        owner=owner,
    )


def scale_by_soap(
    b1: ScalarOrSchedule = 0.95,
    b2: ScalarOrSchedule = 0.95,
    shampoo_beta: ScalarOrSchedule | None = None,
    eps: ScalarOrSchedule = 1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    mu_dtype: Any = None,
    *,
    precondition_1d: bool = False,
    bias_correction: bool = True,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""SOAP's scaling: Adam in the eigenbasis of Shampoo's factor statistics.

    Per matrix :math:`G_t` (rows × columns), with :math:`\beta_s` = ``shampoo_beta``:

    .. math::
      L_t = \beta_s L_{t-1} + (1 - \beta_s) G_t G_t^T, \qquad
      R_t = \beta_s R_{t-1} + (1 - \beta_s) G_t^T G_t .

    The first update only gathers :math:`L_1, R_1`, takes their eigenvectors :math:`Q_L, Q_R`
    (columns by decreasing eigenvalue) and returns zeros. Each later update, with
    :math:`s = t - 1` Adam's step and :math:`G' = Q_L^T G_t Q_R`:

    .. math::
      M'_s = \beta_1 M'_{s-1} + (1 - \beta_1) G', \quad
      V'_s = \beta_2 V'_{s-1} + (1 - \beta_2) G' \odot G', \quad
      u_t = Q_L \frac{M'_s / (1 - \beta_1^s)}{\sqrt{V'_s / (1 - \beta_2^s)} + \epsilon} Q_R^T,

    then :math:`L, R` take :math:`G_t`, and when :math:`s` is a multiple of
    ``precondition_frequency`` each basis takes one power step,
    :math:`Q \leftarrow \mathrm{QR}(S\, Q P)` with :math:`P` ordering the columns by decreasing
    :math:`q_i^T S q_i` (the eigenvalue estimates); :math:`V'` follows :math:`P` and :math:`M'` is
    rotated into the new basis (the paper keeps :math:`M` in the gradients' basis and rotates it
    every step: the same numbers). This is the authors' schedule (the statistics of a step are
    gathered after its update).

    A rank-2 leaf is one matrix; a leaf of higher rank needs ``weight_dimension_numbers`` (its
    other axes are a batch of matrices, each with its own factors). A vector is one row: its
    side is preconditioned only with ``precondition_1d``; a scalar is plain Adam. A side longer
    than ``max_precond_dim`` keeps the identity (the one-sided SOAP of large embeddings), as
    does a side of length 1. Statistics and bases are kept, and the rotations computed, in at
    least float32 (for bfloat16 and float16 params too); the moments in the params' dtypes.
    Real params only.

    The defaults are the authors' (betas (0.95, 0.95), ε 1e-8, frequency 10, 10000), ε added
    after the debiased root as in :func:`gradtx.scale_by_adam`; the authors add it to
    :math:`\sqrt{V'_s}` before debiasing, which is this with ``eps`` the schedule
    :math:`\epsilon / \sqrt{1 - \beta_2^{s}}`.

    Args:
      b1: β₁ in [0, 1), the first moment's decay. Default 0.95.
      b2: β₂ in [0, 1), the second moment's decay. Default 0.95.
      shampoo_beta: β_s in [0, 1), the statistics' decay, or None (default) for ``b2``.
      eps: ε >= 0 added to the denominator. Default 1e-8.
      precondition_frequency: Adam steps between two power steps of the bases (an int >= 1,
        fixed when built). Default 10.
      max_precond_dim: the longest side given a basis (an int >= 1, fixed). Default 10000.
      mu_dtype: dtype of the first moment (default: the params').
      precondition_1d: give a vector's side a basis too. Default False, the authors'.
      bias_correction: debias both moments (default True, the authors' ``correct_bias``).
      weight_dimension_numbers: which axes of each leaf are its matrices' rows and columns:
        None (rank-2 leaves are matrices), one :class:`gradtx.MatrixDimensionNumbers` for every
        leaf, a tree of them (None for a leaf of rank <= 2 seen as above), or a function of the
        params returning one.

    Returns:
      A :class:`GradientTransformation`; the updates have the gradients' dtypes.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_soap()
      >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, 0.5]])}
      >>> state = tx.init(g)
      >>> u, state = tx.update(g, state)  # the first update only finds the bases
      >>> float(jnp.abs(u["w"]).max())
      0.0
      >>> u, state = tx.update(g, state)  # then Adam in them: its first step is ±1
      >>> u["w"].round(4)
      Array([[1., 0.],
             [0., 1.]], dtype=float32)

    References:
      Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson and Kakade, *SOAP: Improving and
      Stabilizing Shampoo using Adam*, 2024 (arXiv:2409.11321), Algorithms 1–3.
    """
    owner = "scale_by_soap"
    fixed = soap_arguments(
        owner, precondition_frequency, max_precond_dim, precondition_1d, bias_correction, mu_dtype
    )
    build = functools.partial(_scale_by_soap, dimension_numbers=weight_dimension_numbers, **fixed)
    return live(
        owner,
        build,
        optional=("shampoo_beta",),
        ranges=ScaleBySoapState.live_ranges,
        b1=b1,
        b2=b2,
        shampoo_beta=shampoo_beta,
        eps=eps,
    )
