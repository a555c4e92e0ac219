"""Adam-mini against the adam-mini package, and its default blocks by name.

The package's ``Adam_mini`` takes named parameters and picks each one's blocks from its name,
which the shared TorchRow table cannot express: tests/reference/torch_adam_mini.py records
its trajectories on a small transformer's parameters into a JSON fixture; gradtx runs the
same gradients on a dict keyed by the same names, in float64, and must stay within 1e-6
relative (measured: 9e-16). With the package installed, each row is re-recorded live and must
equal the fixture.
"""

from __future__ import annotations

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import helpers
from tests.reference import torch_adam_mini as R

FIXTURE = json.loads(R.FIXTURE.read_text())
HAS_PACKAGE = all(importlib.util.find_spec(m) is not None for m in ("torch", "adam_mini"))


def _gradtx_trajectory(kwargs) -> list[dict[str, np.ndarray]]:
    params, grads = R.problem()
    b1, b2 = kwargs["betas"]
    tx = gradtx.adam_mini(
        kwargs["lr"], b1, b2, kwargs["eps"], kwargs["weight_decay"], num_heads=R.HEADS
    )
    params = {k: jnp.asarray(v) for k, v in params.items()}
    update = jax.jit(tx.update)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = gradtx.apply_updates(params, updates)
        out.append({k: np.asarray(v) for k, v in params.items()})
    return out


def _as_lists(trajectory) -> list[list[np.ndarray]]:
    return [[np.asarray(step[k]) for k in R.SHAPES] for step in trajectory]


@pytest.mark.parametrize("name", sorted(R.ROWS))
def test_matches_the_adam_mini_package(name, x64):
    recorded = FIXTURE["rows"][name]
    assert recorded["kwargs"] == {
        k: list(v) if isinstance(v, tuple) else v for k, v in R.ROWS[name].items()
    }
    got = _as_lists(_gradtx_trajectory(R.ROWS[name]))
    assert helpers.max_relative_deviation(got, _as_lists(recorded["trajectory"])) < 1e-6


@pytest.mark.skipif(not HAS_PACKAGE, reason="PyTorch or adam-mini is not installed")
@pytest.mark.parametrize("name", sorted(R.ROWS))
def test_fixture_is_what_the_package_gives_now(name):
    live = _as_lists(R.torch_trajectory(name))
    recorded = _as_lists(FIXTURE["rows"][name]["trajectory"])
    assert helpers.max_relative_deviation(live, recorded) < 1e-12


def test_second_moments_are_one_per_block():
    params = {k: jnp.zeros(s) for k, s in R.SHAPES.items()}
    nu = gradtx.adam_mini(0.1, num_heads=R.HEADS).init(params).inner_state[0].nu
    assert {k: v.shape for k, v in nu.items()} == {
        "embed.weight": (5, 1),  # a token each
        "layers.0.attn.q_proj.weight": (2, 1),  # a head each
        "layers.0.attn.q_proj.bias": (8,),  # an element each
        "layers.0.attn.k_proj.weight": (1, 1),  # one key head (grouped)
        "layers.0.attn.v_proj.weight": (4, 1),  # an output neuron each
        "layers.0.attn.o_proj.weight": (8, 1),
        "layers.0.mlp.up.weight": (12, 1),
        "layers.0.mlp.down.weight": (8, 1),
        "layers.0.norm.weight": (1,),  # the whole leaf
        "layers.0.attn.c_fused.weight": (1, 1),
        "lm_head.weight": (5, 1),
    }


def test_flax_layouts_put_the_blocks_on_the_output_axis():
    blocks = gradtx.adam_mini_blocks
    # Flax's Dense kernel is (in, out): one block per output column
    assert blocks("params/mlp/Dense_0/kernel", (8, 12)) == gradtx.AdamMiniBlocks((1,))
    # MultiHeadDotProductAttention's query kernel is (d_model, heads, head_dim)
    assert blocks("params/attn/query/kernel", (8, 2, 4)) == gradtx.AdamMiniBlocks((1,))
    # a fused (d_model, heads * head_dim) query kernel: heads of d_model / num_heads columns
    assert blocks("params/attn/query/kernel", (8, 8), num_heads=2) == gradtx.AdamMiniBlocks(
        (1,), (8, 2, 4)
    )
    # Flax's Embed is (vocab, d_model): a block per token
    assert blocks("params/embed/embedding", (5, 8)) == gradtx.AdamMiniBlocks((0,))
    assert blocks("params/LayerNorm_0/scale", (8,)) == gradtx.AdamMiniBlocks()
    assert blocks("params/Dense_0/bias", (8,)) == gradtx.AdamMiniBlocks((0,))
