"""Every optimizer brings an ill-conditioned quadratic and Rosenbrock below 1e-6.

The hyperparameters were chosen once, by a grid search over learning rates (constant, or
cosine-decayed over the budget, whichever ended lower); each row states the budget. Optimizers
whose step does not shrink by itself near the minimum (RMSProp, Adam, LAMB, LARS with a fixed
rate hover at a noise floor set by the rate) get a cosine-decayed rate, as in practice.
"""

import jax
import jax.numpy as jnp
import pytest

import gradtx

CONDITION = jnp.logspace(0, 2, 10)  # curvatures 1 .. 100: condition number 100


def quadratic(p):
    return 0.5 * jnp.sum(CONDITION * p["x"] ** 2)


def rosenbrock(p):
    x, y = p["x"][0], p["x"][1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


PROBLEMS = {
    "quadratic": (quadratic, {"x": jnp.ones(10)}),
    "rosenbrock": (rosenbrock, {"x": jnp.array([-1.2, 1.0])}),
}
TOLERANCE = 1e-6


def cosine(lr, steps):
    return gradtx.cosine_decay_schedule(lr, steps)


# (problem, name, factory of the step budget, steps)
ROWS = [
    ("quadratic", "sgd", lambda n: gradtx.sgd(1.58e-2), 1000),
    ("quadratic", "sgd_momentum", lambda n: gradtx.sgd(cosine(3.98e-3, n), momentum=0.9), 1000),
    ("quadratic", "sgd_nesterov", lambda n: gradtx.sgd(1e-2, momentum=0.9, nesterov=True), 1000),
    ("quadratic", "adagrad", lambda n: gradtx.adagrad(1.0), 1000),
    ("quadratic", "adadelta", lambda n: gradtx.adadelta(cosine(0.631, n)), 1000),
    ("quadratic", "rmsprop", lambda n: gradtx.rmsprop(cosine(2.51e-3, n)), 1000),
    (
        "quadratic",
        "rmsprop_centered_momentum",
        lambda n: gradtx.rmsprop(cosine(1e-4, n), centered=True, momentum=0.9),
        1000,
    ),
    ("quadratic", "adam", lambda n: gradtx.adam(cosine(0.251, n)), 1000),
    ("quadratic", "adamw", lambda n: gradtx.adamw(cosine(0.251, n), weight_decay=0.0), 1000),
    ("quadratic", "lamb", lambda n: gradtx.lamb(0.158), 1000),
    ("quadratic", "lars", lambda n: gradtx.lars(10.0), 1000),
    ("rosenbrock", "sgd", lambda n: gradtx.sgd(1.78e-3), 20000),
    ("rosenbrock", "sgd_momentum", lambda n: gradtx.sgd(2.51e-3, momentum=0.9), 5000),
    ("rosenbrock", "sgd_nesterov", lambda n: gradtx.sgd(1e-3, momentum=0.9, nesterov=True), 5000),
    ("rosenbrock", "adagrad", lambda n: gradtx.adagrad(0.56), 20000),
    ("rosenbrock", "adadelta", lambda n: gradtx.adadelta(cosine(0.1, n)), 20000),
    ("rosenbrock", "rmsprop", lambda n: gradtx.rmsprop(cosine(3e-3, n)), 20000),
    (
        "rosenbrock",
        "rmsprop_centered_momentum",
        lambda n: gradtx.rmsprop(cosine(1e-4, n), centered=True, momentum=0.9),
        5000,
    ),
    ("rosenbrock", "adam", lambda n: gradtx.adam(cosine(0.251, n)), 5000),
    ("rosenbrock", "adamw", lambda n: gradtx.adamw(cosine(0.251, n), weight_decay=0.0), 5000),
    ("rosenbrock", "lamb", lambda n: gradtx.lamb(cosine(1.58e-2, n)), 5000),
    ("rosenbrock", "lars", lambda n: gradtx.lars(cosine(1.58, n)), 5000),
]


@pytest.mark.parametrize("problem, name, make, steps", ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_converges(problem, name, make, steps):
    loss, start = PROBLEMS[problem]
    tx = make(steps)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return (gradtx.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, steps)
        return loss(params)

    final = float(run(start))
    assert final < TOLERANCE, f"{name} on {problem}: {final:.2e} after {steps} steps"
