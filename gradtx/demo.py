"""The main job: train a small MLP with several gradtx optimizers and print their losses.

Run with ``python -m gradtx.demo``. The task is a synthetic two-spirals classification (made
here, nothing is downloaded); each optimizer trains the same network from the same start for
the same number of full-batch steps, jitted with ``lax.scan``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

STEPS = 1500


def two_spirals(n: int = 512, noise: float = 0.08, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    label = rng.integers(0, 2, n)
    sign = np.where(label == 1, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * np.pi)
    x += noise * rng.normal(size=x.shape)
    return jnp.asarray(x, jnp.float32), jnp.asarray(label, jnp.int32)


def init_mlp(key, sizes=(2, 64, 64, 2)):
    params = []
    for k, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])):
        w = jax.random.normal(k, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in)
        params.append({"w": w, "b": jnp.zeros(fan_out)})
    return params


def logits(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params, x, y):
    log_probs = jax.nn.log_softmax(logits(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def train(tx, params, x, y, steps=STEPS):
    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, state = tx.update(grads, state, params)
            return (gradtx.apply_updates(params, updates), state), loss

        (params, state), losses = jax.lax.scan(step, (params, tx.init(params)), None, steps)
        return params, state, losses

    return run(params)


def optimizers():
    warmup_cosine = gradtx.linear_schedule(0.0, 3e-3, 100)
    decay = gradtx.cosine_decay_schedule(3e-3, STEPS - 100, alpha=0.01)
    return {
        "sgd + momentum": gradtx.sgd(0.05, momentum=0.9),
        "rmsprop": gradtx.rmsprop(1e-3),
        "adam": gradtx.adam(3e-3),
        "adamw + clip + warmup": gradtx.chain(
            gradtx.clip_by_global_norm(1.0),
            gradtx.adamw(
                lambda t: jnp.where(t < 100, warmup_cosine(t), decay(t - 100)), weight_decay=1e-4
            ),
        ),
        "lamb": gradtx.lamb(1e-2),
    }


def main() -> None:
    x, y = two_spirals()
    params = init_mlp(jax.random.PRNGKey(0))
    print(f"two spirals, {x.shape[0]} points, MLP 2-64-64-2, {STEPS} full-batch steps\n")
    print(
        f"{'optimizer':24s} {'loss@0':>8s} {'loss@100':>9s} {'final loss':>11s} "
        f"{'accuracy':>9s} {'seconds':>8s}"
    )
    for name, tx in optimizers().items():
        start = time.perf_counter()
        final, state, losses = train(tx, params, x, y)
        losses.block_until_ready()
        seconds = time.perf_counter() - start
        accuracy = float(jnp.mean(jnp.argmax(logits(final, x), axis=1) == y))
        print(
            f"{name:24s} {float(losses[0]):8.4f} {float(losses[100]):9.4f} "
            f"{float(loss_fn(final, x, y)):11.4f} {accuracy:9.1%} {seconds:8.2f}"
        )


if __name__ == "__main__":
    main()
