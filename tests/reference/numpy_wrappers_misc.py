"""Float64 NumPy references for cautious optimizers, split_real_and_imaginary and normalize.

Written from the papers (no jax, optax, torch or gradtx), on lists of leaves as in
``tests/reference/numpy_reference.py``; updates are what is ADDED to the params.

* C-AdamW and C-Lion written out whole, step by step, from Liang et al. (2024): the base
  optimizer's step direction u (the paper's θ ← θ − η u), the mask φ = 1(u ⊙ g > 0) per real
  coordinate (a complex element's two parts each), and the rescaling per leaf. ``decay`` says
  where the decoupled weight decay goes: ``"masked"`` inside u (what ``cautious(adamw(...))``
  computes), ``"outside"`` applied to every coordinate after the masked step (the authors'
  code). ``rescale`` is the paper's ``"count"`` form n / (‖φ‖₀ + ε) or the authors' current
  ``"mean_clamp"`` form 1 / max(mean φ, 1e-3) (then ``mask_eps`` is not used).
* ``split_real_and_imaginary(inner)``: each complex leaf becomes two real leaves (real part,
  imaginary part) for ``inner``, merged back after.
* ``normalize()``: g / ‖g‖ over all leaves (0 for an all-zero update).
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import Ref, _abs_sq, _value


def _parts(x: np.ndarray) -> list[np.ndarray]:
    return [x.real, x.imag] if np.iscomplexobj(x) else [x]


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] + 1j * parts[1] if len(parts) == 2 else parts[0]


def _caution(u: np.ndarray, g: np.ndarray, mask_eps: float, rescale: str) -> np.ndarray:
    """``u`` (a step direction: θ ← θ − η u) kept where ``u g > 0``, rescaled."""
    us, gs = _parts(u), _parts(g)
    masks = [(np.sign(a) * np.sign(b) > 0).astype(np.float64) for a, b in zip(us, gs)]
    n = sum(m.size for m in masks)
    kept = sum(float(m.sum()) for m in masks)
    if rescale == "count":
        factor = n / (kept + mask_eps) if kept + mask_eps > 0 else 0.0
    else:
        factor = 1.0 / max(kept / n, 1e-3) if n else 0.0
    return _join([a * (m * factor) for a, m in zip(us, masks)])


def c_adamw(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    mask_eps=1.0,
    decay="masked",
    rescale="count",
) -> Ref:
    """Cautious AdamW: m, v Adam's moments (v of |g|**2), d = m̂ / (√v̂ + eps);
    u = d + wd p masked as a whole (decay "masked"), or u = caution(d) + wd p ("outside");
    update = -lr u. learning_rate, weight_decay and mask_eps schedulable."""

    def init(ps):
        return (0, [np.zeros_like(p) for p in ps], [np.zeros(p.shape) for p in ps])

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        lr, wd = _value(learning_rate, count), _value(weight_decay, count)
        xi = _value(mask_eps, count)
        out, new_m, new_v = [], [], []
        for g, p, m, v in zip(gs, ps, ms, vs):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * _abs_sq(g)
            d = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            if decay == "masked":
                u = _caution(d + wd * p, g, xi, rescale)
            else:
                u = _caution(d, g, xi, rescale) + wd * p
            out.append(-lr * u)
            new_m.append(m)
            new_v.append(v)
        return out, (t, new_m, new_v)

    return Ref(init, update)


def c_lion(learning_rate, b1=0.9, b2=0.99, weight_decay=0.0, mask_eps=1.0, decay="masked") -> Ref:
    """Cautious Lion: d = sign(b1 m + (1 - b1) g), then m = b2 m + (1 - b2) g; u = d + wd p
    masked as a whole, or caution(d) + wd p; update = -lr u. Real leaves only (Lion has no
    complex form)."""

    def init(ps):
        return (0, [np.zeros_like(p) for p in ps])

    def update(gs, state, ps):
        count, ms = state
        lr, wd = _value(learning_rate, count), _value(weight_decay, count)
        xi = _value(mask_eps, count)
        out, new_m = [], []
        for g, p, m in zip(gs, ps, ms):
            d = np.sign(b1 * m + (1 - b1) * g)
            if decay == "masked":
                u = _caution(d + wd * p, g, xi, "count")
            else:
                u = _caution(d, g, xi, "count") + wd * p
            out.append(-lr * u)
            new_m.append(b2 * m + (1 - b2) * g)
        return out, (count + 1, new_m)

    return Ref(init, update)


def split_real_and_imaginary(inner: Ref) -> Ref:
    """``inner`` on the leaves with each complex leaf replaced by its two parts (in place, real
    part first); the two parts of its updates made one complex leaf again."""

    def split(xs):
        flat, layout = [], []
        for x in xs:
            layout.append(np.iscomplexobj(x))
            flat.extend([x.real.copy(), x.imag.copy()] if np.iscomplexobj(x) else [x])
        return flat, layout

    def merge(flat, layout):
        out, i = [], 0
        for is_complex in layout:
            out.append(flat[i] + 1j * flat[i + 1] if is_complex else flat[i])
            i += 2 if is_complex else 1
        return out

    def init(ps):
        return inner.init(split(ps)[0])

    def update(gs, state, ps):
        flat, layout = split(gs)
        out, state = inner.update(flat, state, split(ps)[0])
        return merge(out, layout), state

    return Ref(init, update)


def normalize() -> Ref:
    """g / sqrt(sum over all leaves of sum |g|**2); 0 where that norm is 0."""

    def init(ps):
        return ()

    def update(gs, state, ps):
        norm = math.sqrt(sum(float(np.sum(_abs_sq(g))) for g in gs))
        return [g / norm if norm > 0 else np.zeros_like(g) for g in gs], state

    return Ref(init, update)


REFERENCES = {
    "c_adamw": c_adamw,
    "c_lion": c_lion,
    "split_real_and_imaginary": split_real_and_imaginary,
    "normalize": normalize,
}
