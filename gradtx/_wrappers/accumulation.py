"""Wrappers around a whole optimizer: gradient accumulation and skipping non-finite steps.

Both wrappers hold the inner optimizer's state unchanged on the steps where it does not run, and
emit updates of negative zeros there. ``-0.0`` is the additive identity of IEEE arithmetic
(``x + -0.0 == x`` bit for bit for every ``x``, ``-0.0`` included, while ``-0.0 + 0.0`` is
``+0.0``), so :func:`gradtx.apply_updates` leaves every param bitwise unchanged on such steps.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import (
    GradientTransformation,
    OptState,
    Params,
    PyTree,
    Updates,
    with_extra_args,
)
from gradtx._core.checks import check_count, check_dtype, check_flag
from gradtx._core.numerics import check_non_negative


class ShouldSkipUpdateFunction(Protocol):
    """optax's type of :class:`MultiSteps`' ``should_skip_update_fn``: from a micro-step's
    updates, the inner step count (``MultiStepsState.gradient_step``) and the params (or
    ``None``), whether to skip the micro-step (a bool scalar) and a tree of information that
    :class:`MultiSteps` keeps in ``skip_state``. :func:`skip_not_finite` and
    :func:`skip_large_updates` are two."""

    def __call__(
        self, updates: Updates, gradient_step: jax.typing.ArrayLike, params: Params | None
    ) -> tuple[jax.typing.ArrayLike, PyTree]: ...


ShouldSkipUpdateFn = ShouldSkipUpdateFunction  # the earlier name in this module


def _check_tx(owner: str, name: str, tx: Any) -> GradientTransformation:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"{owner}: {name} must be a GradientTransformation (init, update), "
            f"got {type(tx).__name__}"
        )
    return with_extra_args(GradientTransformation(tx.init, tx.update))


def negative_zeros_like(tree: PyTree) -> PyTree:
    """Zeros that leave params bitwise unchanged when added (``-0.0``; 0 for integer leaves),
    laid out like ``tree``'s leaves where they carry a sharding (a mesh with explicit axes)."""
    return jax.tree.map(lambda s: jnp.full_like(s, -0.0), tree)


def _run_or_hold(run: jax.Array, tx, updates, inner_state, params, extra):
    """``tx.update(...)`` where ``run`` is True; else negative zeros and ``inner_state`` as is.

    ``lax.cond``: under ``jit`` the inner optimizer is not computed at all on held steps, and
    the held state is the input state, bit for bit (under ``vmap`` the cond becomes a select,
    which picks the same bits).
    """

    def apply(_):
        return tx.update(updates, inner_state, params, **extra)

    def hold(_):
        shapes, _ = jax.eval_shape(apply, None)
        return negative_zeros_like(shapes), inner_state

    if not isinstance(run, jax.core.Tracer):
        # Called eagerly (not under jit/vmap/scan): an eager lax.cond would compile both
        # branches on every call (half a second per step for a small Adam); branch in Python.
        return apply(None) if bool(run) else hold(None)
    return jax.lax.cond(run, apply, hold, None)


# ---- MultiSteps --------------------------------------------------------------------------


class MultiStepsState(NamedTuple):
    """The state of :class:`MultiSteps` (optax's field names)."""

    mini_step: jax.Array  # int32 []: micro-steps accumulated since the last inner update
    gradient_step: jax.Array  # int32 []: inner updates taken so far, saturating at int32 max
    inner_opt_state: OptState  # the inner optimizer's state; changes only on an inner update
    acc_grads: PyTree  # like the params, each leaf in the wider of its dtype and
    #   accumulator_dtype: the sum (not the mean) of this cycle's micro-step gradients
    skip_state: PyTree  # what should_skip_update_fn returned last (() when none is given)


class MultiSteps:
    r"""Gradient accumulation: the inner optimizer steps once every *k* micro-steps.

    Each call to ``update`` is a micro-step: its gradients are added to an accumulator. On the
    *k*-th, the inner optimizer is applied to their mean (or sum) and the accumulator is reset:

    .. math::
      a \leftarrow a + g_i \quad (i = 1 \dots k), \qquad
      u = \text{opt}\big(a / k\big) \text{ on the } k\text{-th micro-step},\ a \leftarrow 0

    On the other micro-steps the updates are negative zeros (params bitwise unchanged by
    :func:`gradtx.apply_updates`) and the inner state is untouched. For a loss that is a mean
    over the batch, *k* micro-batches of *B* examples give exactly the step of one batch of
    *kB*, up to float rounding: the sum is divided once at the end, so there is no running-mean
    drift. Only one buffer the size of the params is added (the accumulator). Under ``jit`` the
    inner optimizer is computed only on the *k*-th micro-step (``lax.cond``); extra keyword
    arguments of ``update`` (a loss, say) reach it with that micro-step's values.

    The accumulator of each leaf is kept in the wider of the param's dtype and
    ``accumulator_dtype`` (default float32, optax's): for bf16 params that is a float32 sum,
    which is what a user wants (a bf16 sum of *k* gradients loses about ``log2 k`` bits more);
    float64 params under x64 get a float64 one. The mean is cast back to the gradients' dtype
    before the inner optimizer sees it, so the inner optimizer gets what one big batch's
    gradient would be.

    Args:
      opt: the inner optimizer (a gradtx or optax transformation).
      every_k_schedule: *k*, an int >= 1, or a function of the inner step count
        (``state.gradient_step``) returning one; a value below 1 at run time is taken as 1.
      use_grad_mean: pass the mean of the micro-step gradients (True) or their sum.
      should_skip_update_fn: optional ``fn(updates, gradient_step, params) -> (skip, info)``
        with ``skip`` a bool scalar array (optax's protocol: ``optax.skip_not_finite`` works).
        A skipped micro-step changes nothing but ``skip_state``, where ``info`` is kept, and
        emits negative zeros.
      accumulator_dtype: the least dtype of the accumulator (see above).

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> opt = gradtx.MultiSteps(gradtx.sgd(0.1), every_k_schedule=2)
      >>> params = {"w": jnp.zeros(2)}
      >>> state = opt.init(params)
      >>> for g in [1.0, 3.0]:
      ...     updates, state = jax.jit(opt.update)({"w": jnp.full(2, g)}, state, params)
      ...     params = gradtx.apply_updates(params, updates)
      ...     print(params["w"], bool(opt.has_updated(state)))
      [0. 0.] False
      [-0.2 -0.2] True

    References:
      Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*, 2017 (the
      equivalence of batch size and accumulation for a mean loss).
    """

    def __init__(
        self,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[jax.Array], jax.typing.ArrayLike],
        use_grad_mean: bool = True,
        should_skip_update_fn: ShouldSkipUpdateFn | None = None,
        accumulator_dtype: Any = jnp.float32,
    ):
        owner = "MultiSteps"
        self._opt = _check_tx(owner, "opt", opt)
        self._inner_opt = opt
        if callable(every_k_schedule):
            first = every_k_schedule(_tree.zero_count())
            try:
                is_int = jnp.issubdtype(jnp.result_type(first), jnp.integer)
            except TypeError:
                is_int = False
            if isinstance(first, bool) or not is_int:
                raise TypeError(
                    f"{owner}: every_k_schedule must return an int, got {first!r} at step 0"
                )
            if np.ndim(first) != 0:
                raise ValueError(
                    f"{owner}: every_k_schedule must return a scalar, got shape "
                    f"{np.shape(first)} at step 0"
                )
            if not isinstance(first, jax.core.Tracer) and int(first) < 1:
                raise ValueError(
                    f"{owner}: every_k_schedule must be >= 1, got {int(first)} at step 0"
                )
            self._every_k = every_k_schedule
        else:
            k = check_count(owner, "every_k_schedule", every_k_schedule, 1)
            self._every_k = lambda step: k
        self._use_grad_mean = check_flag(owner, "use_grad_mean", use_grad_mean)
        if should_skip_update_fn is not None and not callable(should_skip_update_fn):
            raise TypeError(
                f"{owner}: should_skip_update_fn must be a function or None, "
                f"got {type(should_skip_update_fn).__name__}"
            )
        self._should_skip = should_skip_update_fn
        dtype = check_dtype(owner, "accumulator_dtype", accumulator_dtype)
        if dtype is None:
            raise TypeError(f"{owner}: accumulator_dtype must be a floating dtype, got None")
        self._accumulator_dtype = dtype

    @property
    def inner_opt(self) -> GradientTransformation:
        """The wrapped optimizer, as given."""
        return self._inner_opt

    def _skip_info(self, updates, gradient_step, params):
        skip, info = self._should_skip(updates, gradient_step, params)
        skip = jnp.asarray(skip)
        if skip.dtype != jnp.bool_ or skip.shape != ():
            raise ValueError(
                "MultiSteps: should_skip_update_fn must return a bool scalar array first, got "
                f"dtype {skip.dtype} and shape {skip.shape}"
            )
        return skip, info

    def init(self, params: Params) -> MultiStepsState:
        """The accumulator (zeros like ``params``), the counters, and the inner state."""
        _tree.check_leaves("MultiSteps", params, "params")  # before the accumulator reads them
        acc = jax.tree.map(
            lambda p: jnp.zeros(jnp.shape(p), _tree.wider(p.dtype, self._accumulator_dtype)),
            params,
        )
        skip_state = ()
        if self._should_skip is not None:
            _, skip_state = self._skip_info(_tree.zeros_like(params), _tree.zero_count(), params)
        return MultiStepsState(
            mini_step=_tree.zero_count(),
            gradient_step=_tree.zero_count(),
            inner_opt_state=self._opt.init(params),
            acc_grads=acc,
            skip_state=skip_state,
        )

    def update(
        self, updates: Updates, state: MultiStepsState, params: Params | None = None, **extra
    ) -> tuple[Updates, MultiStepsState]:
        """One micro-step: accumulate; on the *k*-th, run the inner optimizer on the mean."""
        if not isinstance(state, MultiStepsState):
            raise ValueError(
                f"MultiSteps: the state must be the MultiStepsState that init made, "
                f"got {type(state).__name__}"
            )
        _tree.check_leaves("MultiSteps", updates, "updates")  # before they are summed and cast
        _tree.check_match("MultiSteps", (state.acc_grads, updates), ("params", "updates"))
        k = jnp.maximum(jnp.asarray(self._every_k(state.gradient_step)).astype(jnp.int32), 1)
        if self._should_skip is None:
            skip, skip_state = jnp.asarray(False), ()
        else:
            skip, skip_state = self._skip_info(updates, state.gradient_step, params)

        acc = jax.tree.map(lambda a, g: a + g.astype(a.dtype), state.acc_grads, updates)
        taken = _tree.saturating_increment(state.mini_step)  # micro-steps in this sum
        emit = jnp.logical_not(skip) & (taken >= k)

        def to_inner(a, g):
            # One division by the number of gradients actually summed: the exact mean.
            mean = a / taken.astype(a.dtype) if self._use_grad_mean else a
            return mean.astype(g.dtype)

        grads = jax.tree.map(to_inner, acc, updates)
        out, inner_state = _run_or_hold(
            emit, self._opt, grads, state.inner_opt_state, params, extra
        )

        def next_acc(new, old):
            return jnp.where(skip, old, jnp.where(emit, jnp.zeros_like(new), new))

        zero = _tree.zero_count()
        new_state = MultiStepsState(
            mini_step=jnp.where(skip, state.mini_step, jnp.where(emit, zero, taken)),
            gradient_step=jnp.where(
                emit, _tree.saturating_increment(state.gradient_step), state.gradient_step
            ),
            inner_opt_state=inner_state,
            acc_grads=jax.tree.map(next_acc, acc, state.acc_grads),
            skip_state=skip_state,
        )
        return out, new_state

    def has_updated(self, state: MultiStepsState) -> jax.Array:
        """Whether the last ``update`` ran the inner optimizer (a bool scalar array)."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformation:
        """The ``(init, update)`` pair, for APIs that take a :class:`GradientTransformation`."""
        return GradientTransformation(self.init, self.update)


# ---- apply_if_finite ---------------------------------------------------------------------


class ApplyIfFiniteState(NamedTuple):
    """The state of :func:`apply_if_finite` (optax's field names)."""

    notfinite_count: jax.Array  # int32 []: non-finite steps in a row up to the last (saturating)
    last_finite: jax.Array  # bool []: whether the last step's gradients were all finite
    total_notfinite: jax.Array  # int32 []: non-finite steps so far (saturating)
    inner_state: OptState  # the inner transformation's state, untouched by a skipped step


def all_finite(tree: PyTree, axes: tuple[str, ...] | None = None) -> jax.Array:
    """True (a bool scalar array) when no leaf of ``tree`` holds a NaN or an infinity (in any
    of its shards along ``axes``, inside ``shard_map``/``pmap``)."""
    leaves = jax.tree.leaves(tree)
    bad = [jnp.any(~jnp.isfinite(x)).astype(jnp.float32) for x in leaves]
    return _tree.shard_sum(bad, leaves, axes) == 0


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int, *, axis_name: Any = None
):
    r"""Skips steps whose gradients hold a NaN or an infinity.

    A step with a non-finite value anywhere in the incoming updates is not given to ``inner``:
    the updates are negative zeros (so :func:`gradtx.apply_updates` leaves the params bitwise
    unchanged) and ``inner``'s state is kept bit for bit; the step is counted in
    ``notfinite_count`` (in a row) and ``total_notfinite`` (in all). A finite step resets
    ``notfinite_count`` to 0.

    After ``max_consecutive_errors`` non-finite steps in a row, the next non-finite ones are
    let through to ``inner`` (as in optax): a run whose gradients stay broken should fail
    visibly rather than stall forever. So ``max_consecutive_errors=0`` never skips.

    Args:
      inner: the transformation to protect (typically the whole optimizer).
      max_consecutive_errors: how many non-finite steps in a row are skipped, an int >= 0.
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along,
        so that every device skips when any shard is not finite (see
        :func:`gradtx.clip_by_global_norm`).

    Returns:
      A :class:`GradientTransformation` with :class:`ApplyIfFiniteState` state; the total
      count also shows as ``"skipped_steps"`` in :func:`gradtx.step_stats`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=3)
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, jnp.nan])}, state, params)
      >>> gradtx.apply_updates(params, updates)["w"], int(state.total_notfinite)
      (Array([1., 1.], dtype=float32), 1)

    References:
      Micikevicius et al., *Mixed Precision Training*, 2018 (skipping the steps whose
      gradients overflow, as dynamic loss scaling does).
    """
    owner = "apply_if_finite"
    tx = _check_tx(owner, "inner", inner)
    limit = check_count(owner, "max_consecutive_errors", max_consecutive_errors, 0)
    axes = _tree.axis_names(owner, axis_name)

    def init(params):
        return ApplyIfFiniteState(
            notfinite_count=_tree.zero_count(),
            last_finite=jnp.asarray(True),
            total_notfinite=_tree.zero_count(),
            inner_state=tx.init(params),
        )

    def update(updates, state, params=None, **extra):
        if not isinstance(state, ApplyIfFiniteState):
            raise ValueError(
                f"{owner}: the state must be the ApplyIfFiniteState that init made, "
                f"got {type(state).__name__}"
            )
        _tree.check_leaves(owner, updates, "updates")  # before the finiteness check reads them
        finite = all_finite(updates, axes)
        count = jnp.where(
            finite, _tree.zero_count(), _tree.saturating_increment(state.notfinite_count)
        )
        run = finite | (count > limit)
        out, inner_state = _run_or_hold(run, tx, updates, state.inner_state, params, extra)
        total = jnp.where(
            finite, state.total_notfinite, _tree.saturating_increment(state.total_notfinite)
        )
        return out, ApplyIfFiniteState(count, finite, total, inner_state)

    return GradientTransformation(init, update)


# ---- should_skip_update_fn: optax's two -------------------------------------------------


def _check_skip_arguments(owner: str, updates: PyTree, gradient_step: Any) -> None:
    """TypeError for a leaf that is not a numeric array or a step that is not an integer;
    ValueError for a step that is not a scalar, or a Python or NumPy one below 0."""
    for path, x in jax.tree_util.tree_flatten_with_path(updates)[0]:
        dtype = None if isinstance(x, (str, bytes)) else getattr(x, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.number):
            raise TypeError(
                f"{owner}: updates must be numeric arrays, got {type(x).__name__} at "
                f"{_tree.path_str(path)!r}"
            )
    if isinstance(gradient_step, (bool, np.bool_)) or not (
        isinstance(gradient_step, numbers.Integral)
        or (
            isinstance(gradient_step, (jax.Array, np.ndarray, np.generic))
            and jnp.issubdtype(gradient_step.dtype, jnp.integer)
        )
    ):
        raise TypeError(f"{owner}: gradient_step must be an integer, got {gradient_step!r}")
    if np.ndim(gradient_step) != 0:
        raise ValueError(
            f"{owner}: gradient_step must be a scalar, got shape {np.shape(gradient_step)}"
        )
    # a JAX array is not read: that would wait for the device at every micro-step
    if not isinstance(gradient_step, jax.Array) and int(gradient_step) < 0:
        raise ValueError(f"{owner}: gradient_step must be >= 0, got {int(gradient_step)}")


def skip_not_finite(
    updates: Updates, gradient_step: jax.typing.ArrayLike, params: Params | None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""Whether ``updates`` hold a NaN or an infinity: a ``should_skip_update_fn`` for
    :class:`MultiSteps`.

    .. math:: \text{skip} = \#\{i : g_i \notin \mathbb R\} > 0

    Args:
      updates: a micro-step's updates (gradients).
      gradient_step: the inner step count (not read; part of the protocol).
      params: the params or ``None`` (not read).

    Returns:
      ``(should_skip, info)``: a bool scalar, and ``{"should_skip": should_skip,
      "num_not_finite": n}`` with ``n`` the int32 count of non-finite elements.

    Raises:
      TypeError: for a leaf that is not a numeric array, or a ``gradient_step`` that is not an
        integer.
      ValueError: for a ``gradient_step`` that is not a scalar, or is negative.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> skip, info = gradtx.skip_not_finite([jnp.array([1.0, jnp.inf, jnp.nan])], 0, None)
      >>> bool(skip), int(info["num_not_finite"])
      (True, 2)
      >>> opt = gradtx.MultiSteps(gradtx.sgd(0.1), 2, should_skip_update_fn=gradtx.skip_not_finite)
    """
    del params
    _check_skip_arguments("skip_not_finite", updates, gradient_step)
    counts = [jnp.sum(~jnp.isfinite(x)).astype(jnp.int32) for x in jax.tree.leaves(updates)]
    num_not_finite = sum(counts, start=jnp.zeros([], jnp.int32))
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: Updates,
    gradient_step: jax.typing.ArrayLike,
    params: Params | None,
    max_squared_norm: jax.typing.ArrayLike,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""Whether the squared global norm of ``updates`` reaches ``max_squared_norm`` (or is NaN):
    a ``should_skip_update_fn`` for :class:`MultiSteps`, once ``max_squared_norm`` is bound.

    .. math:: \text{skip} = \lnot\big(\textstyle\sum_i |g_i|^2 < m\big)

    The sum of squares is taken in at least float32 (complex elements by :math:`|g_i|^2`); a
    NaN or an infinity makes it NaN or infinite, so such updates are skipped too.

    Args:
      updates: a micro-step's updates (gradients).
      gradient_step: the inner step count (not read; part of the protocol).
      params: the params or ``None`` (not read).
      max_squared_norm: *m* >= 0, the least squared norm that is skipped (``inf``: skip only
        non-finite updates).

    Returns:
      ``(should_skip, info)``: a bool scalar, and ``{"should_skip": should_skip,
      "norm_squared": s}`` with ``s`` the squared global norm.

    Raises:
      TypeError: for a leaf that is not a numeric array, a ``gradient_step`` that is not an
        integer, or a ``max_squared_norm`` that is not a real number or array.
      ValueError: for a ``gradient_step`` that is not a scalar or is negative, or a negative
        ``max_squared_norm``.

    Example:
      >>> import functools, gradtx, jax.numpy as jnp
      >>> skip, info = gradtx.skip_large_updates([jnp.array([3.0, 4.0])], 0, None, 16.0)
      >>> bool(skip), float(info["norm_squared"])
      (True, 25.0)
      >>> should_skip = functools.partial(gradtx.skip_large_updates, max_squared_norm=100.0)
      >>> opt = gradtx.MultiSteps(gradtx.sgd(0.1), 2, should_skip_update_fn=should_skip)
    """
    del params
    owner = "skip_large_updates"
    _check_skip_arguments(owner, updates, gradient_step)
    check_non_negative(owner, "max_squared_norm", max_squared_norm)
    squares = [_tree.sum_of_squares(x) for x in jax.tree.leaves(updates)]
    dtype = _tree.wider(jnp.float32, *(s.dtype for s in squares))
    norm_squared = sum((s.astype(dtype) for s in squares), start=jnp.zeros([], dtype))
    bound = jnp.asarray(max_squared_norm)
    wide = _tree.wider(dtype, bound.dtype)
    should_skip = ~(norm_squared.astype(wide) < bound.astype(wide))
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_squared}
