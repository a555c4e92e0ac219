"""The leaderboard's three problems (``python -m benchmarks.zoo``): data, models and losses.

Every task is a classification of examples by a Flax NNX model, trained on mini-batches drawn
from a training set and measured on a held-out set, so one training loop serves them all:

- ``mlp``: :mod:`gradtx.demo`'s MLP (64-128-128-10) on scikit-learn's 8x8 digits, the demo's
  split (1438 train / 359 validation).
- ``cnn``: a small convolutional network on the same digits and split: two 3x3 convolutions
  (16 and 32 channels, the second of stride 2), then a dense layer to the 10 classes.
- ``lm``: a character-level transformer language model (2 pre-norm blocks, width 32, 4 heads,
  a context of 32 characters) on Python's own standard library: the ``.py`` files at the top of
  the running interpreter's ``Lib/`` folder, read in name order, nothing downloaded. Characters
  are bytes, those above 127 mapped to one symbol; the text is cut into windows of 33 and each
  window is an example (predict every next character of its first 32). The files from
  ``HELD_OUT`` on (by name) are the held-out text. Which files exist depends on the Python
  version, so its numbers are comparable within one Python version.

``seed`` picks the initial weights and the order of the mini-batches (shuffled epochs,
:func:`gradtx.demo.batch_indices`); the data and its split are the same for every seed.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import sysconfig
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import demo


@dataclasses.dataclass(frozen=True, eq=False)  # compared (and cached) by identity: it holds arrays
class Task:
    """A problem of the leaderboard.

    ``build(seed)`` makes the model (a ``flax.nnx.Module`` mapping a batch of inputs to logits)
    from an int or a ``jax.random.key``; ``data`` is ``(x_train, y_train), (x_val, y_val)`` as
    NumPy arrays; the loss is the mean cross-entropy of the logits against the labels, over
    every labelled position; ``target`` a held-out accuracy whose first step is reported.
    """

    name: str
    title: str
    build: Callable[[int | jax.Array], object]
    data: tuple
    batch_size: int
    steps: int
    target: float

    @property
    def n_train(self) -> int:
        return len(self.data[0][0])


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


# --- the digits (MLP and CNN) ---


@functools.cache
def _digits():
    return demo.load_digits(0)


def _patches(x: jax.Array, stride: int) -> jax.Array:
    """``[..., H, W, C]`` to ``[..., H / stride, W / stride, 9 C]``: each position's 3x3
    neighbourhood (zero padded), so that a 3x3 convolution is a dense layer over the patches.

    Written with slices rather than ``lax.conv``: under the leaderboard's ``vmap`` over
    optimizer copies a convolution with batched kernels becomes a grouped convolution, which
    XLA:CPU runs tens of times slower than the batched matrix products this gives.
    """
    height, width = x.shape[-3:-1]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)])
    shifted = [
        padded[..., i : i + height : stride, j : j + width : stride, :]
        for i in range(3)
        for j in range(3)
    ]
    return jnp.concatenate(shifted, axis=-1)


def _cnn(seed: int | jax.Array):
    from flax import nnx

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.conv1 = nnx.Linear(9 * 1, 16, rngs=rngs)  # 3x3 convolutions as patch layers
            self.conv2 = nnx.Linear(9 * 16, 32, rngs=rngs)
            self.out = nnx.Linear(4 * 4 * 32, 10, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(*x.shape[:-1], 8, 8, 1)  # the 64 features are an 8x8 image
            x = jax.nn.relu(self.conv1(_patches(x, 1)))
            x = jax.nn.relu(self.conv2(_patches(x, 2)))
            return self.out(x.reshape(*x.shape[:-3], -1))

    return CNN(nnx.Rngs(seed))


# --- the character-level language model ---


class LMShape(NamedTuple):
    layers: int
    width: int
    heads: int
    context: int  # characters seen, and predicted, per example


LM = LMShape(layers=2, width=32, heads=4, context=32)
SMOKE_LM = LMShape(layers=1, width=16, heads=2, context=16)
VOCAB = 128  # bytes 0..127; every byte above is one symbol, 127 (DEL, absent from source)
TRAIN_CHARS = 1_000_000
HELD_OUT = "ta"  # files named from here on are the held-out text
VAL_WINDOWS = 64


def _stdlib_files() -> list[pathlib.Path]:
    return sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def _windows(files: list[pathlib.Path], chars: int, length: int) -> np.ndarray:
    """The files' bytes as ``[n, length]`` int32 windows, from the first ``chars`` characters."""
    parts, total = [], 0
    for path in files:
        if total >= chars:
            break
        parts.append(path.read_bytes())
        total += len(parts[-1])
    text = np.frombuffer(b"".join(parts)[:chars], np.uint8).astype(np.int32)
    text = np.minimum(text, VOCAB - 1)
    n = len(text) // length
    return text[: n * length].reshape(n, length)


@functools.cache
def _text(context: int, train_chars: int, val_windows: int):
    files = _stdlib_files()
    if not files:
        raise SystemExit(f"no .py files in {sysconfig.get_paths()['stdlib']}: no text for lm")
    train = _windows([f for f in files if f.name < HELD_OUT], train_chars, context + 1)
    held_out = [f for f in files if f.name >= HELD_OUT]
    val = _windows(held_out, val_windows * (context + 1), context + 1)
    return (train[:, :-1], train[:, 1:]), (val[:, :-1], val[:, 1:])


def _transformer(shape: LMShape, seed: int | jax.Array):
    from flax import nnx

    width, heads = shape.width, shape.heads

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.norm1 = nnx.LayerNorm(width, rngs=rngs)
            self.qkv = nnx.Linear(width, 3 * width, rngs=rngs)
            self.proj = nnx.Linear(width, width, rngs=rngs)
            self.norm2 = nnx.LayerNorm(width, rngs=rngs)
            self.up = nnx.Linear(width, 4 * width, rngs=rngs)
            self.down = nnx.Linear(4 * width, width, rngs=rngs)

        def __call__(self, x):
            *batch, length, _ = x.shape
            q, k, v = jnp.split(self.qkv(self.norm1(x)), 3, axis=-1)
            split = lambda a: a.reshape(*batch, length, heads, width // heads)
            scores = jnp.einsum("...qhd,...khd->...hqk", split(q), split(k))
            causal = jnp.tril(jnp.ones((length, length), bool))
            scores = jnp.where(causal, scores / np.sqrt(width // heads), -jnp.inf)
            mixed = jnp.einsum("...hqk,...khd->...qhd", jax.nn.softmax(scores), split(v))
            x = x + self.proj(mixed.reshape(*batch, length, width))
            return x + self.down(jax.nn.gelu(self.up(self.norm2(x))))

    class CharLM(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(VOCAB, width, rngs=rngs)
            position = 0.02 * jax.random.normal(rngs.params(), (shape.context, width))
            self.position = nnx.Param(position)
            self.blocks = nnx.List([Block(rngs) for _ in range(shape.layers)])
            self.norm = nnx.LayerNorm(width, rngs=rngs)
            self.head = nnx.Linear(width, VOCAB, rngs=rngs)

        def __call__(self, tokens):
            x = self.embed(tokens) + self.position[: tokens.shape[-1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    return CharLM(nnx.Rngs(seed))


# --- the tasks ---

TASKS = ("mlp", "cnn", "lm")


def with_steps(task: Task, steps: int) -> Task:
    return dataclasses.replace(task, steps=steps)


def tasks(smoke: bool = False) -> dict[str, Task]:
    """The three tasks; ``smoke``: a few steps each, a small text and a smaller language model
    (what the test suite runs)."""
    digits = _digits()
    lm = SMOKE_LM if smoke else LM
    text = _text(lm.context, 20_000, 16) if smoke else _text(lm.context, TRAIN_CHARS, VAL_WINDOWS)
    steps = (lambda n: 6) if smoke else (lambda n: n)
    return {
        "mlp": Task(
            "mlp", "digits, MLP 64-128-128-10", demo.build_model, digits, 128, steps(300), 0.95
        ),
        "cnn": Task("cnn", "digits, CNN 16-32 channels", _cnn, digits, 128, steps(200), 0.95),
        "lm": Task(
            "lm",
            f"stdlib text, char transformer {lm.layers}x{lm.width}, context {lm.context}",
            functools.partial(_transformer, lm),
            text,
            8,
            steps(200),
            0.3,
        ),
    }
