"""Second-order pieces: Hessian-vector products, conjugate gradient, and a damped Newton-CG step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree
from gradtx._core.checks import check_count, check_hyperparam
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as
from gradtx._curvature.linesearch import _RESERVED, scalar_dtype, value_fn_of
from gradtx._transforms.step_size import _scale, _scale_by_learning_rate


def hvp(fn: Callable[..., jax.Array], params: PyTree, v: PyTree, *args: Any) -> PyTree:
    r"""The Hessian-vector product :math:`\nabla^2 f(\theta)\, v`, forward over reverse.

    ``jax.jvp`` of ``jax.grad(fn)``: the cost of about two gradients, no Hessian formed. For
    complex params it is the product of the real problem's Hessian with the (real, imaginary)
    pairs, in the convention of the gradients ``update`` takes (the conjugate of JAX's).

    Args:
      fn: a scalar function ``fn(params, *args)``.
      params: the point :math:`\theta` (a pytree).
      v: the vector, a pytree like ``params``.
      *args: further arguments of ``fn`` (held fixed).

    Returns:
      A pytree like ``params``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: x[0] ** 2 * x[1]
      >>> gradtx.hvp(fn, jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]))  # Hessian [[4, 2], [2, 0]]
      Array([4., 2.], dtype=float32)

    References:
      Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation, 1994.
    """
    if not callable(fn):
        raise TypeError(f"hvp: fn must be a function of the params, got {fn!r}")
    _tree.check_match("hvp", (params, v), ("params", "v"))
    grad = jax.grad(lambda p: fn(p, *args))
    return _conj(jax.jvp(grad, (params,), (v,))[1])


def _conj(tree: PyTree) -> PyTree:
    """Complex leaves conjugated: JAX's gradients (and their derivatives) of a real function of
    complex params are the conjugates of the steepest-ascent direction ``update`` takes."""
    return jax.tree.map(lambda x: jnp.conj(x) if jnp.iscomplexobj(x) else x, tree)


class CGInfo(NamedTuple):
    """How a conjugate-gradient solve ended."""

    num_steps: jax.Array  # int32 []: matrix-vector products taken
    residual_norm: jax.Array  # [] scalar dtype: ||A x - b|| at the end
    negative_curvature: jax.Array  # bool []: stopped on a direction with p'Ap <= 0


def conjugate_gradient(
    matvec: Callable[[PyTree], PyTree],
    b: PyTree,
    x0: PyTree | None = None,
    *,
    max_steps: int,
    tol: jax.typing.ArrayLike = 1e-5,
) -> tuple[PyTree, CGInfo]:
    r"""Solves :math:`A x = b` for a symmetric positive definite :math:`A` by conjugate gradient.

    Nocedal and Wright's Algorithm 5.2 on pytrees, in one ``lax.while_loop``: it stops when
    :math:`\|A x - b\| \le \text{tol}\, \|b\|`, after ``max_steps`` products, or when a search
    direction has curvature :math:`p^\top A p \le 0` (``A`` not positive definite; the
    iterate so far is returned, as truncated Newton-CG does).

    Args:
      matvec: ``x -> A x`` on pytrees like ``b``.
      b: the right-hand side.
      x0: the starting point (zeros if None).
      max_steps: the most products with ``A`` (in exact arithmetic CG needs at most the
        dimension).
      tol: the relative residual tolerance (an array is fine, e.g. traced).

    Returns:
      ``(x, info)`` with :class:`CGInfo`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> a = jnp.array([[4.0, 1.0], [1.0, 3.0]])
      >>> x, info = gradtx.conjugate_gradient(lambda v: a @ v, jnp.array([1.0, 2.0]), max_steps=2)
      >>> x.round(4)  # [1/11, 7/11]
      Array([0.0909, 0.6364], dtype=float32)

    References:
      Hestenes and Stiefel, *Methods of conjugate gradients for solving linear systems*, 1952;
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithm 5.2.
    """
    owner = "conjugate_gradient"
    if not callable(matvec):
        raise TypeError(f"{owner}: matvec must be a function x -> A x, got {matvec!r}")
    max_steps = check_count(owner, "max_steps", max_steps)
    if not isinstance(tol, jax.Array):  # a Python or NumPy value is checked now, an array not
        if callable(tol):
            raise TypeError(f"{owner}: tol must be a number or a scalar array, got {tol!r}")
        check_hyperparam(owner, "tol", tol)
    dtype = scalar_dtype(b)
    x = _tree.zeros_like(b) if x0 is None else x0
    if x0 is not None:
        _tree.check_match(owner, (b, x0), ("b", "x0"))

    def checked_matvec(v):  # a wrongly shaped A v would broadcast against b in the residual
        out = matvec(v)
        _tree.check_match(owner, (b, out), ("b", "matvec(x)"))
        return out

    bound = jnp.asarray(tol).astype(dtype) * jnp.sqrt(_tree.vdot(b, b).astype(dtype))

    def sub(a, c):
        return jax.tree.map(lambda u, w: u - w.astype(u.dtype), a, c)

    def axpy(alpha, u, w):  # w + alpha * u
        return jax.tree.map(lambda ui, wi: wi + alpha.astype(wi.dtype) * ui.astype(wi.dtype), u, w)

    r = sub(checked_matvec(x), b)
    rr = _tree.vdot(r, r).astype(dtype)
    p = jax.tree.map(jnp.negative, r)
    start = (x, r, p, rr, jnp.zeros([], jnp.int32), rr <= bound * bound, jnp.zeros([], bool))

    def cond(c):
        *_, j, done, _ = c
        return ~done & (j < max_steps)

    def body(c):
        x, r, p, rr, j, _, _ = c
        ap = checked_matvec(p)
        pap = _tree.vdot(p, ap).astype(dtype)
        negative = ~(pap > 0)
        alpha = jnp.where(negative, jnp.zeros([], dtype), rr / jnp.where(negative, 1, pap))
        x_new = axpy(alpha, p, x)
        r_new = axpy(alpha, ap, r)
        rr_new = _tree.vdot(r_new, r_new).astype(dtype)
        beta = rr_new / jnp.where(rr > 0, rr, 1)
        p_new = jax.tree.map(lambda ri, pi: -ri + beta.astype(pi.dtype) * pi, r_new, p)
        keep = functools.partial(jax.tree.map, functools.partial(jnp.where, negative))
        x_new, r_new, p_new = keep((x, r, p), (x_new, r_new, p_new))
        rr_new = jnp.where(negative, rr, rr_new)
        done = negative | (rr_new <= bound * bound)
        return x_new, r_new, p_new, rr_new, j + 1, done, negative

    x, _, _, rr, steps, _, negative = jax.lax.while_loop(cond, body, start)
    return x, CGInfo(num_steps=steps, residual_norm=jnp.sqrt(rr), negative_curvature=negative)


class ScaleByNewtonCGState(NamedTuple):
    count: jax.Array  # int32 []: updates so far, saturating
    info: CGInfo  # the last solve (num_steps: Hessian-vector products taken)


def _newton_direction(damping: Value, tol: Value | None, *, max_cg_steps: int):
    owner = "scale_by_newton_cg"

    def init(params):
        dtype = scalar_dtype(params)
        return ScaleByNewtonCGState(
            count=_tree.zero_count(),
            info=CGInfo(jnp.zeros([], jnp.int32), jnp.zeros([], dtype), jnp.zeros([], bool)),
        )

    def update(updates, state, params=None, **extra):
        value_fn = value_fn_of(owner, params, extra, "the Hessian is taken there")
        _tree.check_match(owner, (params, updates), ("params", "updates"))
        fn_kwargs = {k: v for k, v in extra.items() if k not in _RESERVED}
        fn = functools.partial(value_fn, **fn_kwargs)
        dtype = state.info.residual_norm.dtype
        lam = value_as(damping, dtype)
        _, hessian_vector = jax.linearize(jax.grad(fn), params)

        def matvec(v):
            hv = _conj(hessian_vector(v))
            return jax.tree.map(lambda a, x: a + (lam.astype(x.dtype) * x).astype(a.dtype), hv, v)

        if tol is None:  # Nocedal and Wright's forcing sequence: superlinear near the minimum
            gnorm = _norms.global_norm(updates).astype(dtype)
            rel = jnp.minimum(jnp.asarray(0.5, dtype), jnp.sqrt(gnorm))
        else:
            rel = value_as(tol, dtype)
        x, info = conjugate_gradient(matvec, updates, max_steps=max_cg_steps, tol=rel)
        # Negative curvature on the first CG direction: no Newton information; take the
        # gradient (steepest descent), as Nocedal and Wright's Algorithm 7.1 does.
        first = info.negative_curvature & (info.num_steps == 1)
        x = jax.tree.map(lambda a, g: jnp.where(first, g.astype(a.dtype), a), x, updates)
        x = _tree.cast_like(x, updates)
        return x, ScaleByNewtonCGState(
            count=_tree.saturating_increment(state.count),
            info=info._replace(residual_norm=info.residual_norm.astype(dtype)),
        )

    return GradientTransformation(init, update)


def scale_by_newton_cg(
    damping: ScalarOrSchedule = 0.0,
    max_cg_steps: int = 50,
    tol: ScalarOrSchedule | None = None,
) -> GradientTransformation:
    r"""Replaces the gradient by the damped Newton direction :math:`(H + \lambda I)^{-1} g`.

    The system is solved by conjugate gradient (:func:`conjugate_gradient`) with
    Hessian-vector products of ``value_fn`` at ``params`` (forward over reverse, linearized once
    per update), so no Hessian is formed. Each CG step costs one product (about two gradients).
    Stopping (truncated Newton, Nocedal and Wright's Algorithm 7.1): relative residual below
    ``tol`` (None: :math:`\min(0.5, \sqrt{\|g\|})`, which gives superlinear convergence),
    ``max_cg_steps``, or a direction of non-positive curvature: the iterate so far is used, and
    at the first CG step the gradient itself. The result is then a descent direction's negative
    whatever the Hessian; follow it with a negative scale and, away from a minimum, a line search,
    as :func:`newton_cg` does.

    Args:
      damping: :math:`\lambda \ge 0`, added to the Hessian's diagonal (Levenberg-style), a
        float or a schedule. Default 0 (plain Newton).
      max_cg_steps: the most CG steps per update (>= 1). Default 50.
      tol: the relative residual tolerance, or None (the default) for the forcing sequence
        above.

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs ``params`` and ``value_fn``
      (further extra arguments other than ``value`` and ``grad`` are passed to it).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(jnp.array([1.0, 10.0, 100.0]) * x ** 2)
      >>> tx, x = gradtx.scale_by_newton_cg(tol=1e-6), jnp.ones(3)
      >>> updates, _ = tx.update(jax.grad(fn)(x), tx.init(x), x, value_fn=fn)
      >>> updates.round(5)  # H^-1 g = diag(2, 20, 200)^-1 (2, 20, 200)
      Array([1., 1., 1.], dtype=float32)

    References:
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, section 7.1, Algorithm 7.1;
      Martens, *Deep learning via Hessian-free optimization*, ICML 2010 (damping).
    """
    owner = "scale_by_newton_cg"
    max_cg_steps = check_count(owner, "max_cg_steps", max_cg_steps)
    build = functools.partial(_newton_direction, max_cg_steps=max_cg_steps)
    return live(owner, build, optional=("tol",), damping=damping, tol=tol)


def newton_cg(
    learning_rate: ScalarOrSchedule | None = None,
    damping: ScalarOrSchedule = 0.0,
    max_cg_steps: int = 50,
    tol: ScalarOrSchedule | None = None,
    linesearch: GradientTransformation | None = None,
) -> GradientTransformation:
    r"""Damped Newton-CG: ``chain(scale_by_newton_cg, scale(-learning_rate), linesearch)``.

    .. math:: \theta \leftarrow \theta - \eta\, \alpha\, (\nabla^2 f(\theta) + \lambda I)^{-1} g

    with :math:`\alpha` = ``learning_rate`` (1 if None) and :math:`\eta` from the line search
    (1 without one). On a convex quadratic with ``damping=0`` and a tight ``tol``, one step lands
    on the minimum. Away from a minimum (a non-convex region, as Rosenbrock's start), use a line
    search: ``scale_by_zoom_linesearch(..., initial_guess_strategy="one")`` or
    ``scale_by_backtracking_linesearch(...)``; ``update`` then also needs ``value`` and ``grad``.

    Args:
      learning_rate: a float or a schedule scaling the step, or None (the default: 1, the
        Newton step).
      damping: :math:`\lambda \ge 0`. Default 0.
      max_cg_steps: the most CG steps (Hessian-vector products) per update. Default 50.
      tol: CG's relative residual tolerance (None, the default: Nocedal and Wright's forcing
        sequence).
      linesearch: a line search transformation, or None (the default: unit steps).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs ``params`` and ``value_fn``
      (and ``value`` and ``grad`` with a line search); its state holds the live
      hyperparameters.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(jnp.array([1.0, 10.0, 100.0]) * (x - 1.0) ** 2)
      >>> tx, x = gradtx.newton_cg(tol=1e-6), jnp.zeros(3)
      >>> updates, _ = tx.update(jax.grad(fn)(x), tx.init(x), x, value_fn=fn)
      >>> gradtx.apply_updates(x, updates).round(5)  # one Newton step
      Array([1., 1., 1.], dtype=float32)

    References:
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithm 7.1.
    """
    if linesearch is not None and not (
        callable(getattr(linesearch, "init", None))
        and callable(getattr(linesearch, "update", None))
    ):
        raise TypeError(
            f"newton_cg: linesearch must be a GradientTransformation or None, got {linesearch!r}"
        )
    max_cg_steps = check_count("newton_cg", "max_cg_steps", max_cg_steps)
    direction = functools.partial(_newton_direction, max_cg_steps=max_cg_steps)

    def build(learning_rate, damping, tol):
        step = _scale(-1.0) if learning_rate is None else _scale_by_learning_rate(learning_rate)
        links = (direction(damping, tol), step) + (() if linesearch is None else (linesearch,))
        return chain(*links)

    return live(
        "newton_cg",
        build,
        optional=("learning_rate", "tol"),
        learning_rate=learning_rate,
        damping=damping,
        tol=tol,
    )
