"""Parameter trees of the timing suite, as lists of (name, shape): plain Python, no framework.

The same list builds the JAX pytree (a dict, name -> array) and the torch tensors, so both
sides optimize the same shapes. Values are drawn from one seeded NumPy generator per leaf:
params ~ 0.02 N(0, 1), grads ~ 0.01 N(0, 1) (the gradients are fixed across steps; an optimizer
step does not look at where they came from).
"""

from __future__ import annotations

import math

import numpy as np

Spec = list[tuple[str, tuple[int, ...]]]

FINGERPRINT_LEAVES = 8
FINGERPRINT_VALUES = 4


def single_leaf(n: int) -> Spec:
    """One fp32 vector of ``n`` params."""
    return [("w", (n,))]


def uniform(n_leaves: int, leaf_size: int) -> Spec:
    """``n_leaves`` vectors of ``leaf_size`` params each."""
    width = len(str(n_leaves - 1))
    return [(f"w{i:0{width}d}", (leaf_size,)) for i in range(n_leaves)]


def two_leaves() -> Spec:
    """A linear classifier on the 8 x 8 digits: kernel (64, 10) and bias (10,), 650 params.
    A small model whose optimizer step is mostly the cost of calling it."""
    return [("dense/kernel", (64, 10)), ("dense/bias", (10,))]


def cnn(channels: tuple[int, ...] = (32, 32, 64, 64, 96, 96, 96, 96, 128, 128, 128, 128)) -> Spec:
    """A CNN-shaped tree of 50 leaves: 12 3x3 convolutions (kernel, bias) each followed by a
    batch norm (scale, bias), from 3 input channels, then a dense head to 10 classes. About
    0.93M params with the default channels."""
    spec: Spec = []
    width = len(str(len(channels) - 1))
    c_in = 3
    for i, c in enumerate(channels):
        p = f"conv{i:0{width}d}"
        spec += [(f"{p}/kernel", (3, 3, c_in, c)), (f"{p}/bias", (c,))]
        spec += [(f"{p}/bn/scale", (c,)), (f"{p}/bn/bias", (c,))]
        c_in = c
    return spec + [("head/kernel", (c_in, 10)), ("head/bias", (10,))]


def transformer(
    n_layers: int = 62, d_model: int = 64, vocab: int = 16384, max_len: int = 512
) -> Spec:
    """A decoder-shaped tree: 16 leaves per layer plus 8 outside, 1000 leaves by default.

    Per layer: query/key/value/output kernels (d, d) and biases (d,), two layer norms (scale and
    bias, (d,)), an MLP (d, 4d), (4d,), (4d, d), (d,). Outside: token (vocab, d) and position
    (max_len, d) embeddings, embedding and final layer norms, an untied head (d, vocab), (vocab,).
    Defaults: 1000 leaves, 5.2M params.
    """
    d, f = d_model, 4 * d_model
    spec: Spec = [
        ("embed/token", (vocab, d)),
        ("embed/position", (max_len, d)),
        ("embed/ln/scale", (d,)),
        ("embed/ln/bias", (d,)),
    ]
    width = len(str(n_layers - 1))
    for i in range(n_layers):
        p = f"layer{i:0{width}d}"
        for name in ("query", "key", "value", "out"):
            spec += [(f"{p}/attn/{name}/kernel", (d, d)), (f"{p}/attn/{name}/bias", (d,))]
        for ln in ("ln1", "ln2"):
            spec += [(f"{p}/{ln}/scale", (d,)), (f"{p}/{ln}/bias", (d,))]
        spec += [
            (f"{p}/mlp/up/kernel", (d, f)),
            (f"{p}/mlp/up/bias", (f,)),
            (f"{p}/mlp/down/kernel", (f, d)),
            (f"{p}/mlp/down/bias", (d,)),
        ]
    spec += [
        ("final_ln/scale", (d,)),
        ("final_ln/bias", (d,)),
        ("head/kernel", (d, vocab)),
        ("head/bias", (vocab,)),
    ]
    return spec


def build(kind: str, **kwargs) -> Spec:
    """The spec named ``kind`` ('single', 'uniform', 'transformer') with its arguments."""
    builders = {
        "single": single_leaf,
        "uniform": uniform,
        "transformer": transformer,
        "cnn": cnn,
        "two": two_leaves,
    }
    if kind not in builders:
        raise ValueError(f"trees.build: kind must be one of {sorted(builders)}, got {kind!r}")
    return builders[kind](**kwargs)


def n_params(spec: Spec) -> int:
    """Total number of params in ``spec``."""
    return sum(math.prod(shape) for _, shape in spec)


def values(spec: Spec, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Float32 (params, grads) dicts for ``spec``, the same for every library."""
    params, grads = {}, {}
    for i, (name, shape) in enumerate(spec):
        rng = np.random.default_rng([seed, i])
        params[name] = (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        grads[name] = (0.01 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    return params, grads


def default_repeats(n_params: int) -> int:
    """Timed steps for a tree of ``n_params``: fixed by size, so every library does the same."""
    return int(min(50, max(10, 4e8 // max(n_params, 1))))


def fingerprint(spec: Spec, params0: dict, params: dict) -> dict:
    """A few values of ``params - params0`` (evenly spaced leaves, first values) and their sum."""
    names = [name for name, _ in spec]
    idx = np.unique(np.linspace(0, len(names) - 1, FINGERPRINT_LEAVES).round().astype(int))
    sample = []
    total = 0.0
    for name in names:
        total += float(np.abs(np.asarray(params[name], np.float64) - params0[name]).sum())
    for i in idx:
        name = names[i]
        delta = np.asarray(params[name], np.float64).ravel() - params0[name].ravel()
        sample += delta[:FINGERPRINT_VALUES].tolist()
    return {"sample": sample, "abs_sum": total}
