"""The main job: train a Flax model on handwritten digits with several gradtx optimizers.

Run with ``python -m gradtx.demo`` (``pip install ".[demo]"`` first). The data is scikit-learn's
8x8 handwritten digits, which ship inside the scikit-learn package: nothing is downloaded. Each
optimizer trains the same Flax NNX MLP (64-128-128-10) from the same initial weights on the same
sequence of mini-batches, through ``flax.nnx.Optimizer`` with the gradtx optimizer as its ``tx``.
Training runs in jitted chunks of steps (``lax.scan``) so that the progress bar costs nothing.

Printed at the end: one row per optimizer with the final loss on the whole training set, the
accuracy on the held-out validation set, the time per training step (compiled, measured after
compilation) and the compile time. A PNG of the loss and accuracy curves is written to ``--out``
(default ``./gradtx_demo.png``).

Options: ``--steps N`` (default 1500), ``--batch-size B`` (128), ``--out PATH``, ``--seed S``.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

STEPS = 1500
BATCH_SIZE = 128
CHUNK = 50  # at most this many steps per compiled call: the bar and the curves advance by chunks
VALIDATION = 0.2  # the fraction of the digits held out


def load_digits(seed: int = 0):
    """scikit-learn's digits as float32 features in [0, 1] and int32 labels, split in two."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = np.asarray(digits.data, np.float32) / 16.0  # pixel intensities are 0..16
    y = np.asarray(digits.target, np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(VALIDATION * len(x)))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def build_model(seed: int | jax.Array):
    """The MLP, built the same way (same initial weights) for every optimizer; ``seed`` is an
    int or a ``jax.random.key``."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden1 = nnx.Linear(64, 128, rngs=rngs)
            self.hidden2 = nnx.Linear(128, 128, rngs=rngs)
            self.out = nnx.Linear(128, 10, rngs=rngs)

        def __call__(self, x):
            x = jax.nn.relu(self.hidden1(x))
            x = jax.nn.relu(self.hidden2(x))
            return self.out(x)

    return MLP(nnx.Rngs(seed))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The mean over every labelled position (``labels`` has the shape of ``logits`` but the
    last axis: one label per example, or one per position of a sequence)."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[..., None], axis=-1))


def optimizers(steps: int) -> dict[str, gradtx.GradientTransformation]:
    """The optimizers compared, with learning rates that suit this problem."""
    warmup = max(1, steps // 10)
    # the schedule needs a decay phase after the warmup, even for a run of one or two steps
    decay_steps = max(steps, warmup + 1)
    schedule = gradtx.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=3e-3,
        warmup_steps=warmup,
        decay_steps=decay_steps,
        end_value=3e-5,
    )
    return {
        "sgd + momentum": gradtx.sgd(0.05, momentum=0.9),
        "rmsprop": gradtx.rmsprop(1e-3),
        "adam": gradtx.adam(1e-3),
        "adamw + warmup/cosine": gradtx.adamw(schedule, weight_decay=1e-4),
        "lamb": gradtx.lamb(3e-3),
    }


@dataclass
class Result:
    name: str
    train_loss: float = float("nan")  # on the whole training set, after the last step
    val_accuracy: float = float("nan")
    ms_per_step: float = float("nan")
    compile_seconds: float = 0.0
    steps: list[int] = field(default_factory=list)  # the step after each chunk
    losses: list[float] = field(default_factory=list)  # mean mini-batch loss of each chunk
    accuracies: list[float] = field(default_factory=list)  # validation accuracy after each chunk


def batch_indices(n: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """``[steps, batch_size]`` example indices: shuffled epochs, one sequence for everyone."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size
    epochs = -(-steps // per_epoch)
    batches = [
        rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        for _ in range(epochs)
    ]
    return np.concatenate(batches)[:steps].astype(np.int32)


def chunk_size(steps: int) -> int:
    """Steps per compiled call: a divisor of ``steps`` up to CHUNK, so that one compiled program
    runs every chunk (CHUNK itself, and a shorter last chunk, when only small divisors exist)."""
    size = max(d for d in range(1, min(steps, CHUNK) + 1) if steps % d == 0)
    return size if size * 5 >= min(steps, CHUNK) else min(steps, CHUNK)


def train(
    name: str,
    tx: gradtx.GradientTransformation,
    data,
    indices: np.ndarray,
    *,
    seed: int,
    progress,
    pass_value: bool = False,
    pass_objective: bool = False,
) -> Result:
    """Trains a fresh model with ``tx`` on the mini-batches ``indices``; returns its record.

    ``pass_value``: give ``tx.update`` the mini-batch's loss as ``value=`` (Polyak's step size
    needs it). ``pass_objective``: give it the mini-batch's loss as a function of the params,
    ``obj_fn=`` (Sophia's Hessian estimate needs it).
    """
    from flax import nnx

    (x_train, y_train), (x_val, y_val) = data
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_val, y_val = jnp.asarray(x_val), jnp.asarray(y_val)

    model = build_model(seed)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))

    def loss_fn(model, x, y):
        return cross_entropy(model(x), y)

    # The data are arguments, not closed-over constants: XLA would fold constants at compile time.
    def run_chunk(state, chunk_indices, x_train, y_train):
        def step(state, idx):
            model, optimizer = nnx.merge(graphdef, state)
            x, y = x_train[idx], y_train[idx]
            loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
            extra = {"value": loss} if pass_value else {}
            if pass_objective:
                model_def, _, rest = nnx.split(model, nnx.Param, ...)
                extra["obj_fn"] = lambda p: loss_fn(nnx.merge(model_def, p, rest), x, y)
            optimizer.update(model, grads, **extra)
            return nnx.state((model, optimizer)), loss

        state, losses = jax.lax.scan(step, state, chunk_indices)
        return state, jnp.mean(losses)

    @jax.jit
    def evaluate(state, x_train, y_train, x_val, y_val):
        model, _ = nnx.merge(graphdef, state)
        accuracy = jnp.mean(jnp.argmax(model(x_val), axis=-1) == y_val)
        return loss_fn(model, x_train, y_train), accuracy

    result = Result(name)
    compiled = {}  # by chunk length: a shorter last chunk compiles once more
    run_seconds, done, size = 0.0, 0, chunk_size(len(indices))
    for start in range(0, len(indices), size):
        chunk = jnp.asarray(indices[start : start + size])
        if chunk.shape[0] not in compiled:
            began = time.perf_counter()
            lowered = jax.jit(run_chunk).lower(state, chunk, x_train, y_train)
            compiled[chunk.shape[0]] = lowered.compile()
            result.compile_seconds += time.perf_counter() - began
        began = time.perf_counter()
        state, mean_loss = compiled[chunk.shape[0]](state, chunk, x_train, y_train)
        mean_loss = float(mean_loss)  # waits for the chunk to finish
        run_seconds += time.perf_counter() - began
        done += chunk.shape[0]
        _, accuracy = evaluate(state, x_train, y_train, x_val, y_val)
        result.steps.append(done)
        result.losses.append(mean_loss)
        result.accuracies.append(float(accuracy))
        progress.update(chunk.shape[0])
        progress.set_postfix_str(f"{name}: loss {mean_loss:.4f}")

    train_loss, accuracy = evaluate(state, x_train, y_train, x_val, y_val)
    result.train_loss, result.val_accuracy = float(train_loss), float(accuracy)
    result.ms_per_step = 1e3 * run_seconds / max(done, 1)
    return result


def table(results: Sequence[Result]) -> str:
    header = (
        f"{'optimizer':24s} {'train loss':>11s} {'val accuracy':>13s} "
        f"{'ms/step':>8s} {'compile s':>10s}"
    )
    rows = [
        f"{r.name:24s} {r.train_loss:11.4f} {r.val_accuracy:13.1%} "
        f"{r.ms_per_step:8.3f} {r.compile_seconds:10.2f}"
        for r in results
    ]
    return "\n".join([header, "-" * len(header), *rows])


def plot(results: Sequence[Result], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in results:
        ax_loss.plot(r.steps, r.losses, label=r.name)
        ax_acc.plot(r.steps, r.accuracies, label=r.name)
    ax_loss.set(xlabel="step", ylabel="training loss (mean over each chunk of steps)")
    ax_loss.set(yscale="log", title=title)
    ax_acc.set(xlabel="step", ylabel="validation accuracy", title="held-out digits")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None):
    parser = argparse.ArgumentParser(
        prog="python -m gradtx.demo",
        description="Train a Flax MLP on scikit-learn's digits with several gradtx optimizers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per optimizer")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="examples per step")
    parser.add_argument("--out", default="gradtx_demo.png", help="where to write the plot")
    parser.add_argument("--seed", type=int, default=0, help="data split, batches and weights")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    folder = pathlib.Path(args.out).resolve().parent
    if not folder.is_dir():
        parser.error(f"--out: the folder {folder} does not exist")
    return args


# what the demo imports beyond gradtx's own dependencies: the ``demo`` extra
DEMO_MODULES = {
    "flax": "flax",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
}


def check_demo_extra() -> None:
    """Stops with the command that installs what is missing, before any work is done."""
    missing = [pkg for mod, pkg in DEMO_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise SystemExit(
            f"python -m gradtx.demo needs {', '.join(missing)}: "
            "install the demo extra with pip install 'gradtx[demo]'"
        )


def main(argv: Sequence[str] | None = None) -> list[Result]:
    """Runs the comparison; returns the results (also printed, and plotted to ``--out``)."""
    args = parse_args(argv)
    check_demo_extra()
    from tqdm.auto import tqdm

    data = load_digits(args.seed)
    n_train = len(data[0][0])
    if args.batch_size > n_train:
        raise SystemExit(f"--batch-size must be <= {n_train} (the training examples)")
    indices = batch_indices(n_train, args.steps, args.batch_size, args.seed)
    title = f"digits: {n_train} train / {len(data[1][0])} validation, MLP 64-128-128-10"
    print(f"{title}; {args.steps} steps of {args.batch_size} examples; jax {jax.__version__}")
    print(f"devices: {', '.join(str(d) for d in jax.devices())}\n", flush=True)

    txs = optimizers(args.steps)
    results = []
    # The bar goes to stderr and switches itself off when that is not a terminal (a log, pytest).
    with tqdm(total=len(txs) * args.steps, file=sys.stderr, disable=None, unit="step") as bar:
        for name, tx in txs.items():
            results.append(train(name, tx, data, indices, seed=args.seed, progress=bar))

    print(table(results))
    plot(results, args.out, title)
    print(f"\nloss curves written to {args.out}")
    return results


if __name__ == "__main__":
    main()
