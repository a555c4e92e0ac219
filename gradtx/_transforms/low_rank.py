"""GaLore's piece: each matrix's gradient projected onto a low-rank subspace, an inner optimizer
run there, its output projected back.

A leaf is a batch of matrices (:mod:`gradtx._linalg.view`). Every ``update_proj_gap`` steps the
subspace of each matrix is refreshed from the singular value decomposition of that step's
gradient: the leading ``rank`` left singular vectors for a tall (or square) matrix, the right
ones for a wide matrix, so that the projected gradient is the smaller of the two ``rank``-sized
products. Between refreshes the projector is kept in the state, and the inner optimizer's state
lives on the projected gradients (its memory is what GaLore saves).
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
from gradtx._core.checks import check_count, check_dtype, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as
from gradtx._linalg import lapack as _lapack
from gradtx._linalg.view import MatrixDimensionNumbers, leaf_dimension_numbers, matrix_axes
from gradtx._transforms.second_moments import scale_by_adam

GaLoreDimensionNumbers = MatrixDimensionNumbers

_NON_NEGATIVE = (">= 0", lambda v: v >= 0)


def galore_leaf_specs(owner: str, spec: Any, tree: Any) -> list[Any]:
    """Per leaf of ``tree``, the dimension numbers of its matrices, or None for a leaf that is
    not projected. None (default): every rank-2 leaf is one matrix; one
    :class:`MatrixDimensionNumbers`: every leaf of rank >= 2 (its other axes a batch); a tree
    of them: as given; a function of ``tree``: its result, read the same way."""
    if callable(spec) and not isinstance(spec, MatrixDimensionNumbers):
        spec = spec(tree)
    leaves = jax.tree.leaves(tree)
    if spec is None:
        return [MatrixDimensionNumbers() if len(x.shape) == 2 else None for x in leaves]
    if isinstance(spec, MatrixDimensionNumbers):
        return [spec if len(x.shape) >= 2 else None for x in leaves]
    return leaf_dimension_numbers(owner, "weight_dimension_numbers", spec, tree)


class _Layout(NamedTuple):
    """How one projected leaf is laid out: its matrices' axes, sizes and the projection side."""

    order: tuple[int, ...]  # the leaf's axes: batch, then rows, then columns
    batch_shape: tuple[int, ...]  # the sizes of the batch axes
    rows: int
    cols: int
    rank: int  # min(rank, rows, cols)
    left: bool  # rows >= cols: project the rows (P^H G), else the columns (G P)

    @property
    def projector_shape(self) -> tuple[int, ...]:
        return (*self.batch_shape, self.rows if self.left else self.cols, self.rank)

    @property
    def projected_shape(self) -> tuple[int, ...]:
        r = self.rank
        return (*self.batch_shape, *((r, self.cols) if self.left else (self.rows, r)))


def _layout(shape: tuple[int, ...], spec: MatrixDimensionNumbers, rank: int, owner: str):
    batch, rows, cols = matrix_axes(shape, spec, owner)
    m = math.prod(shape[a] for a in rows)
    n = math.prod(shape[a] for a in cols)
    return _Layout(
        batch + rows + cols, tuple(shape[a] for a in batch), m, n, min(rank, m, n), m >= n
    )


def _matrices(x: jax.Array, layout: _Layout) -> jax.Array:
    """``x`` as (batch..., rows, columns)."""
    return x.transpose(layout.order).reshape(*layout.batch_shape, layout.rows, layout.cols)


def _restore(m: jax.Array, shape: tuple[int, ...], layout: _Layout) -> jax.Array:
    moved = tuple(shape[a] for a in layout.order)
    return m.reshape(moved).transpose(tuple(int(i) for i in np.argsort(layout.order)))


def _herm(x: jax.Array) -> jax.Array:
    return jnp.swapaxes(x, -1, -2).conj()


_matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


def _fresh_projector(g: jax.Array, old: jax.Array, rank: int, left: bool, svd_dtype, align: bool):
    """The leading singular vectors of each matrix of ``g`` on the projected side, in ``g``'s
    dtype; with ``align``, each turned (a sign, or a phase if complex) so that its inner product
    with the previous projector's column is real and >= 0."""
    u, _, vh = _lapack.svd(_tree.cast(g, svd_dtype), full_matrices=False)
    p = u[..., :rank] if left else _herm(vh[..., :rank, :])
    p = _tree.cast(p, g.dtype)
    if align:
        d = jnp.sum(old.conj() * p, axis=-2, keepdims=True)
        size = jnp.abs(d)
        safe = jnp.where(size > 0, size, 1).astype(d.dtype)
        p = p * jnp.where(size > 0, d.conj() / safe, jnp.ones((), d.dtype))
    return p


# One conditional for every leaf's refresh: XLA:CPU runs each conditional as a step of its own
# (a quarter of a millisecond each, measured), which per leaf made a transformer's plain step
# three times optax's. Jitted so that an eager step compiles the refresh once per tree, not at
# every call (a lax.cond outside jit traces and compiles its branches each time); inlined
# under jit.
@functools.partial(jax.jit, static_argnames=("kinds", "align"))
def _maybe_refresh(refresh, matrices, olds, *, kinds, align):
    """Each ``olds[i]``, or where ``refresh`` the fresh projector of ``matrices[i]``; ``kinds``:
    each leaf's (rank, left, svd_dtype)."""

    def fresh(matrices, olds):
        return tuple(
            _fresh_projector(g, old, rank, left, svd_dtype, align)
            for g, old, (rank, left, svd_dtype) in zip(matrices, olds, kinds)
        )

    return jax.lax.cond(refresh, fresh, lambda matrices, olds: tuple(olds), matrices, olds)


class GaLoreState(NamedTuple):
    """The state of :func:`gradtx.contrib.scale_by_galore` (and galore's), as optax's."""

    count: jax.Array  # int32 []: updates so far; a refresh when count % update_proj_gap == 0
    base_optimizer_state: Any  # the inner optimizer's, over the projected gradients
    projector: Any  # like the params: (batch..., rows or cols, r) per projected leaf, in the
    # compute dtype (at least float32); None for the others (no zero-size placeholder, which
    # checkpointers such as orbax refuse)

    # GaLore's scale alpha: >= 0 (it is not a decay, as "scale" may be elsewhere)
    live_ranges = {"scale": _NON_NEGATIVE}


def _scale_by_galore(
    scale: Value,
    *,
    rank: int,
    update_proj_gap: int,
    base_optimizer: GradientTransformation | None,
    dimension_numbers: Any,
    svd_dtype: Any,
    align_signs: bool,
    owner: str,
) -> GradientTransformation:
    inner = scale_by_adam() if base_optimizer is None else base_optimizer

    def plan(tree):
        specs = galore_leaf_specs(owner, dimension_numbers, tree)
        return [
            None if s is None else _layout(tuple(x.shape), s, rank, owner)
            for x, s in zip(jax.tree.leaves(tree), specs)
        ]

    def init(params):
        flat, treedef = jax.tree.flatten(params)
        layouts = plan(params)
        projectors, proxies = [], []
        for x, lay in zip(flat, layouts):
            dtype = jnp.result_type(x)
            if lay is None:
                projectors.append(None)
                proxies.append(x)
            else:
                projectors.append(jnp.zeros(lay.projector_shape, _tree.wider(dtype, jnp.float32)))
                proxies.append(jnp.zeros(lay.projected_shape, dtype))
        return GaLoreState(
            count=_tree.zero_count(),
            base_optimizer_state=inner.init(treedef.unflatten(proxies)),
            projector=treedef.unflatten(projectors),
        )

    def update(updates, state, params=None, **extra):
        flat, treedef = jax.tree.flatten(updates)
        layouts = plan(updates)
        expected = [
            None if lay is None else np.empty(lay.projector_shape, np.int8) for lay in layouts
        ]
        _tree.check_match(
            owner,
            (treedef.unflatten(expected), state.projector),
            ("projectors for these updates", "state"),
        )
        old = treedef.flatten_up_to(state.projector)
        refresh = state.count % update_proj_gap == 0
        matrices = [
            None if lay is None else _matrices(_tree.cast(g, p.dtype), lay)
            for g, p, lay in zip(flat, old, layouts)
        ]
        refreshed = [
            i
            for i, (m, lay) in enumerate(zip(matrices, layouts))
            if m is not None and m.size and lay.rank
        ]
        projectors = list(old)
        if refreshed:
            kinds = tuple(
                (
                    layouts[i].rank,
                    layouts[i].left,
                    jnp.dtype(
                        old[i].dtype if svd_dtype is None else _svd_dtype(old[i].dtype, svd_dtype)
                    ),
                )
                for i in refreshed
            )
            fresh = _maybe_refresh(
                refresh,
                tuple(matrices[i] for i in refreshed),
                tuple(old[i] for i in refreshed),
                kinds=kinds,
                align=align_signs,
            )
            for i, p in zip(refreshed, fresh):
                projectors[i] = p
        projected = []
        for g, m, p, lay in zip(flat, matrices, projectors, layouts):
            if lay is None:
                projected.append(g)
                continue
            low = _matmul(_herm(p), m) if lay.left else _matmul(m, p)
            projected.append(_tree.cast(low, g.dtype))
        inner_out, inner_state = inner.update(
            treedef.unflatten(projected), state.base_optimizer_state, None, **extra
        )
        out = []
        for g, u, p, lay in zip(flat, treedef.flatten_up_to(inner_out), projectors, layouts):
            if lay is None:
                out.append(u)
                continue
            u = _tree.cast(u, p.dtype)
            full = _matmul(p, u) if lay.left else _matmul(u, _herm(p))
            alpha = value_as(scale, _tree.real_dtype(p.dtype))
            out.append(_tree.cast(_restore(_tree.times(full, alpha), g.shape, lay), g.dtype))
        new_state = GaLoreState(
            count=_tree.saturating_increment(state.count),
            base_optimizer_state=inner_state,
            projector=treedef.unflatten(projectors),
        )
        return treedef.unflatten(out), new_state

    return GradientTransformation(init, update)


def _svd_dtype(compute: Any, requested: Any) -> Any:
    """``requested``, complex where the matrices are."""
    if jnp.issubdtype(compute, jnp.complexfloating):
        return _tree.wider(requested, jnp.complex64)
    return jnp.dtype(requested)


def check_base_optimizer(owner: str, value: Any) -> Any:
    if value is not None and not (
        callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))
    ):
        raise TypeError(
            f"{owner}: base_optimizer must be a GradientTransformation (init and update) or "
            f"None, got {value!r}"
        )
    return value


def galore_arguments(
    owner: str,
    rank: Any,
    update_proj_gap: Any,
    base_optimizer: Any,
    weight_dimension_numbers: Any,
    svd_dtype: Any,
    align_signs: Any,
) -> dict[str, Any]:
    """The validated arguments of scale_by_galore that are fixed when it is built."""
    spec = weight_dimension_numbers
    is_spec = lambda x: isinstance(x, MatrixDimensionNumbers)  # noqa: E731
    if not callable(spec) or is_spec(spec):
        if not all(is_spec(s) for s in jax.tree.leaves(spec, is_leaf=is_spec)):
            raise TypeError(
                f"{owner}: weight_dimension_numbers must be None, a MatrixDimensionNumbers, a "
                f"tree of them or a function of the params, got {spec!r}"
            )
    return dict(
        rank=check_count(owner, "rank", rank),
        update_proj_gap=check_count(owner, "update_proj_gap", update_proj_gap),
        base_optimizer=check_base_optimizer(owner, base_optimizer),
        dimension_numbers=spec,
        svd_dtype=check_dtype(owner, "svd_dtype", svd_dtype),
        align_signs=check_flag(owner, "align_signs", align_signs),
        owner=owner,
    )


def scale_by_galore(
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: ScalarOrSchedule = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_dimension_numbers: Any = None,
    *,
    svd_dtype: Any = None,
    align_signs: bool = False,
) -> GradientTransformation:
    r"""GaLore's scaling: an inner optimizer on each matrix's gradient projected to low rank.

    For a matrix gradient :math:`G_t \in \mathbb{R}^{m \times n}` and :math:`r = \min(\text{rank},
    m, n)`, at steps :math:`t \equiv 0 \pmod T` (:math:`T` = ``update_proj_gap``, counting from
    0) the projector is refreshed from :math:`G_t = U \Sigma V^H`:

    .. math::
      P_t = U_{:, :r} \ (m \ge n), \qquad P_t = V_{:, :r} \ (m < n),

    and kept otherwise (:math:`P_t = P_{t-1}`). Then, with :math:`\rho` the inner optimizer
    (Adam by default) and :math:`\alpha` = ``scale``,

    .. math::
      R_t = P_t^H G_t \ \text{or}\ G_t P_t, \qquad N_t = \rho(R_t), \qquad
      u_t = \alpha\, P_t N_t \ \text{or}\ \alpha\, N_t P_t^H .

    Leaves that are not projected (by default every leaf not of rank 2) go through
    :math:`\rho` whole, unscaled. The inner optimizer gets no params; decoupled weight decay
    belongs after this transformation (see :func:`gradtx.galore`).

    Singular vectors are defined up to sign (a phase if complex). By default the SVD's own are
    used, as optax.contrib and the paper's code do, so the trajectory depends on the routine
    after the first refresh (the inner optimizer's moments carry over to the new basis);
    ``align_signs=True`` turns each new singular vector towards the one it replaces, which
    makes the whole trajectory independent of the SVD's sign choices (the same on every
    device) and keeps the carried moments in a consistently oriented basis.

    The SVD and the projections run in the gradient's dtype, at least float32 (bfloat16 and
    float16 gradients are projected in float32; the projected gradient is handed to the inner
    optimizer in the gradient's dtype); the projector is stored in that dtype. optax runs the
    SVD in float32 whatever the dtype: ``svd_dtype="float32"`` gives its numbers for float64
    params.

    Args:
      rank: the rank r >= 1 of each projection (capped at min(m, n)). Default 128, optax's.
        Fixed when built (it sets the state's shapes), as is ``update_proj_gap``.
      update_proj_gap: T >= 1, the steps between refreshes of the projector. Default 200,
        optax's and the paper's for pre-training (where it takes α = 0.25).
      scale: α >= 0, the factor on the projected-back updates. Default 1.0. Live.
      base_optimizer: the inner optimizer ρ, a transformation that needs no params (its
        hyperparameters stay live in the nested state). Default :func:`gradtx.scale_by_adam`.
      weight_dimension_numbers: which leaves are projected and how: None (default: every
        rank-2 leaf, rows on axis 0), one :class:`gradtx.MatrixDimensionNumbers` for every
        leaf of rank >= 2 (axes it does not name are a batch of matrices, each with its own
        projector), a tree of them with None for the leaves not projected, or a function of
        the params returning either.
      svd_dtype: the dtype of the SVD (default: the projections', at least float32).
      align_signs: turn each refreshed singular vector towards the previous one. Default
        False (optax's numbers).

    Returns:
      A :class:`GradientTransformation`; the updates have the gradients' dtypes.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_galore(rank=1)
      >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, 0.5], [0.0, 0.0]]), "b": jnp.ones(2)}
      >>> updates, state = tx.update(g, tx.init(g))
      >>> updates["w"].round(3)  # Adam's first step, sign(R) = 1, on the leading direction
      Array([[1., 0.],
             [0., 0.],
             [0., 0.]], dtype=float32)
      >>> state.inner_state.projector["w"].shape  # 3 >= 2 rows: the left singular vector
      (3, 1)

    References:
      Zhao, Zhang, Chen, Wang, Anandkumar and Tian, *GaLore: Memory-Efficient LLM Training by
      Gradient Low-Rank Projection*, ICML 2024 (arXiv:2403.03507), Algorithm 2.
    """
    owner = "scale_by_galore"
    fixed = galore_arguments(
        owner,
        rank,
        update_proj_gap,
        base_optimizer,
        weight_dimension_numbers,
        svd_dtype,
        align_signs,
    )
    build = functools.partial(_scale_by_galore, **fixed)
    return live(owner, build, ranges=GaLoreState.live_ranges, scale=scale)
