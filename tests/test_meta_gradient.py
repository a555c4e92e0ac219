"""Differentiating through ``update``: meta-gradients of a learning rate over 10 unrolled steps.

``loss_after(lr)`` builds the state, sets the learning rate with :func:`gradtx.set_hyperparams`
(a traced value: hyperparameters are data in the state), runs 10 steps of gradient descent on a
small nonlinear objective and returns the final loss. ``jax.grad`` of it is compared with
central finite differences in float64, and ``jax.grad`` under ``jit`` with ``jax.grad`` run
eagerly. The same for the gradient with respect to the initial params, in one direction.

Finite differences in float64: the central difference ``(f(x + h) - f(x - h)) / 2h`` is off by
``h^2 |f'''| / 6`` (truncation) plus about ``eps |f| / h`` (rounding of ``f``, ``eps = 2.2e-16``).
With ``h = 1e-5 x`` both are near ``1e-10`` relative for these smooth, O(1)-curved objectives
(measured: 1.4e-12 to 8.2e-10 for the learning rate, 2.5e-11 to 6.8e-11 along the direction
in params), so ``rtol = 1e-7`` leaves two to three orders of magnitude for the curvature of
10 composed steps and is still a test that a wrong derivative (a missing term is an O(1)
change) cannot pass.

jit vs eager: the same derivative program, but XLA fuses it differently under jit (FMA
contraction in float64 too), so the two differ by float64 roundings carried through 10 steps
and their reverse pass: a few hundred ulps at most (``rtol = 1e-12``; measured at most 1.1e-14
relative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

UNROLL = 10
H = 1e-5  # relative finite-difference step (see the module docstring)
FD_RTOL = 1e-7
JIT_RTOL = 1e-12


def objective(params):
    """A small nonlinear objective over a pytree: quadratic bowl, quartic wall, a coupling."""
    w, b = params["w"], params["b"]
    curvature = jnp.asarray([[1.0, 3.0], [0.5, 2.0]], w.dtype)
    return (
        0.5 * jnp.sum(curvature * w * w)
        + 0.1 * jnp.sum(w**4)
        + jnp.sum((b - jnp.asarray([0.5, -1.0], b.dtype)) ** 2)
        + 0.3 * jnp.sum(w[0] * b)
    )


def start():
    return {
        "w": jnp.asarray([[1.0, -0.8], [0.6, 1.2]], jnp.float64),
        "b": jnp.asarray([0.3, 0.9], jnp.float64),
    }


OPTIMIZERS = {
    "sgd_momentum": (lambda: gradtx.sgd(0.05, momentum=0.9), 0.05),
    "adam": (lambda: gradtx.adam(0.05), 0.05),
    "adamw": (lambda: gradtx.adamw(0.05, weight_decay=0.1), 0.05),
    # a schedule drives the momentum through the 10 steps while the learning rate is traced
    "sgd_scheduled_momentum": (
        lambda: gradtx.sgd(0.05, momentum=gradtx.linear_schedule(0.5, 0.95, UNROLL)),
        0.05,
    ),
}


def make_step(tx, objective=objective):
    """One step of gradient descent with ``tx`` on ``objective``."""

    def step(params, state):
        updates, state = tx.update(jax.grad(objective)(params), state, params)
        return gradtx.apply_updates(params, updates), state

    return step


def loss_after(step, tx, lr, params, steps=UNROLL, objective=objective):
    """The objective after ``steps`` steps from ``params`` with learning rate ``lr``."""
    state = gradtx.set_hyperparams(tx.init(params), learning_rate=lr)
    for _ in range(steps):
        params, state = step(params, state)
    return objective(params)


def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


DIRECTION = {"w": np.asarray([[0.3, -0.5], [0.7, 0.2]]), "b": np.asarray([-0.4, 0.6])}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_meta_gradients_match_finite_differences_and_jit(name, x64):
    """d loss / d lr and d loss / d params0 (in one direction) through 10 steps."""
    make, lr = OPTIMIZERS[name]
    tx = make()
    params = start()
    lr = jnp.asarray(lr, jnp.float64)
    direction = jax.tree.map(lambda d: jnp.asarray(d, jnp.float64), DIRECTION)

    step = make_step(tx)

    def f(rate, p, step=step):
        return loss_after(step, tx, rate, p)

    grad_lr, grad_params = jax.grad(f, argnums=(0, 1))(lr, params)

    # the learning rate
    fd = float(central_difference(lambda r: f(r, params), lr, H * lr))
    assert np.isfinite(float(grad_lr)) and float(grad_lr) != 0.0
    np.testing.assert_allclose(float(grad_lr), fd, rtol=FD_RTOL)

    # the initial params, along one direction
    directional = sum(
        float(jnp.vdot(g, d))
        for g, d in zip(jax.tree.leaves(grad_params), jax.tree.leaves(direction))
    )

    def along(t):
        return f(lr, jax.tree.map(lambda p, d: p + t * d, params, direction))

    fd = float(central_difference(along, jnp.asarray(0.0, jnp.float64), H))
    np.testing.assert_allclose(directional, fd, rtol=FD_RTOL)

    # Through jit: each step jitted (compiled once, differentiated through), and for Adam the
    # whole differentiated program jitted: the same derivatives; a new learning rate is data.
    expected = jax.tree.leaves((grad_lr, grad_params))
    traces = []

    def counted(p, state):
        traces.append(None)  # runs only when jit traces the step
        return step(p, state)

    jit_step = jax.jit(counted)
    through = jax.grad(lambda r, p: f(r, p, jit_step), argnums=(0, 1))
    programs = [through] + ([jax.jit(jax.grad(f, argnums=(0, 1)))] if name == "adam" else [])
    for program in programs:
        for a, b in zip(jax.tree.leaves(program(lr, params)), expected):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=JIT_RTOL, atol=1e-15)
        program(lr * 1.5, params)
    assert len(traces) == 1  # ten steps, two learning rates: one trace of the jitted step
    if name == "adam":
        assert programs[1]._cache_size() == 1


# ---- a stationary coordinate: a param whose gradient is 0 at every step ----------------------


def with_stationary_coordinate(params):
    """The objective has a minimum at w[1] = 0 in that coordinate: its gradient stays 0."""
    return jnp.sum(params["w"] ** 2) + jnp.sum(params["w"][:1] * params["v"])


STATIONARY = {
    "adam": lambda: gradtx.adam(0.05),
    "adamw": lambda: gradtx.adamw(0.05),
    "nadam": lambda: gradtx.adam(0.05, nesterov=True),
    "lamb": lambda: gradtx.lamb(0.05),
    "rmsprop_eps_outside": lambda: gradtx.rmsprop(0.05, eps_in_sqrt=False),
    "adagrad_torch": lambda: gradtx.adagrad(
        0.05, initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False
    ),
}
# gradtx._core.norms.sqrt has derivative 0 at 0 (the true slope is infinite): 0 * inf is NaN
CONTROLS = {
    "sgd_momentum": lambda: gradtx.sgd(0.05, momentum=0.9),
    "rmsprop": lambda: gradtx.rmsprop(0.05),  # eps inside the root: rsqrt(v + eps) at v = 0
    "adam_eps_root": lambda: gradtx.adam(0.05, eps_root=1e-16),  # the documented remedy
}


@pytest.mark.parametrize(
    "name",
    list(STATIONARY) + list(CONTROLS),
)
def test_meta_gradient_with_a_stationary_coordinate_is_finite(name, x64):
    tx = (STATIONARY | CONTROLS)[name]()
    params = {"w": jnp.asarray([1.0, 0.0, -2.0]), "v": jnp.zeros(1)}

    def f(rate):
        step = make_step(tx, with_stationary_coordinate)
        return loss_after(step, tx, rate, params, steps=5, objective=with_stationary_coordinate)

    lr = jnp.asarray(0.05, jnp.float64)
    grad = float(jax.grad(f)(lr))
    assert np.isfinite(grad)
    np.testing.assert_allclose(grad, float(central_difference(f, lr, H * lr)), rtol=FD_RTOL)
