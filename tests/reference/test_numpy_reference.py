"""Hand-computed self-checks for the float64 NumPy references."""

import math

import numpy as np
import pytest

from . import numpy_reference as R


def run(ref, grads_seq, params):
    """Apply ref to a sequence of gradient lists with fixed params; return all updates."""
    state = ref.init(params)
    outs = []
    for grads in grads_seq:
        ups, state = ref.update(grads, state, params)
        outs.append(ups)
    return outs


def test_registry_names():
    assert set(R.REFERENCES) == {
        "identity",
        "set_to_zero",
        "scale",
        "scale_by_schedule",
        "scale_by_learning_rate",
        "trace",
        "ema",
        "bias_correction",
        "scale_by_rms",
        "scale_by_stddev",
        "scale_by_rss",
        "scale_by_adadelta",
        "scale_by_adam",
        "add_decayed_weights",
        "scale_by_trust_ratio",
        "clip",
        "clip_by_norm",
        "clip_by_global_norm",
        "sgd",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "adamw",
        "lamb",
        "lars",
    }
    assert set(R.SCHEDULES) == {"constant_schedule", "linear_schedule", "cosine_decay_schedule"}


def test_shapes_dtype_and_no_mutation():
    params = [np.ones((2, 3), np.float32), np.array(2.0), np.zeros((0, 4))]
    grads = [np.full((2, 3), 0.5, np.float32), np.array(-1.0), np.zeros((0, 4))]
    g_copy = [g.copy() for g in grads]
    for name in ["adam", "lamb", "lars", "adagrad", "rmsprop", "sgd", "adadelta", "adamw"]:
        ref = R.REFERENCES[name](0.1) if name != "adadelta" else R.adadelta()
        (ups,) = run(ref, [grads], params)
        for u, g in zip(ups, grads):
            assert isinstance(u, np.ndarray) and u.dtype == np.float64 and u.shape == g.shape
            assert np.all(np.isfinite(u))
    for g, c in zip(grads, g_copy):
        np.testing.assert_array_equal(g, c)


def test_adam_first_step_is_minus_lr_sign():
    g = [np.array([3.0, -0.2, 0.0, 1e-3]), np.array(-7.0)]
    (ups,) = run(R.adam(0.01, eps=0.0, eps_root=1e-300), [g], [np.zeros(4), np.array(0.0)])
    np.testing.assert_allclose(ups[0], -0.01 * np.sign(g[0]), rtol=1e-12)
    np.testing.assert_allclose(ups[1], 0.01, rtol=1e-12)


def test_adam_two_steps_by_hand_and_nesterov():
    b1, b2, eps = 0.9, 0.999, 1e-8
    g1, g2 = 1.0, 2.0
    m1, v1 = 0.1 * g1, 0.001 * g1**2
    m2, v2 = b1 * m1 + 0.1 * g2, b2 * v1 + 0.001 * g2**2
    want2 = (m2 / (1 - b1**2)) / (math.sqrt(v2 / (1 - b2**2)) + eps)
    _, (u2,) = run(R.scale_by_adam(), [[np.array(g1)], [np.array(g2)]], [np.array(0.0)])
    assert u2 == pytest.approx(want2, rel=1e-13)
    (u1,) = run(R.scale_by_adam(nesterov=True), [[np.array(g1)]], [np.array(0.0)])[0]
    mh = b1 * m1 / (1 - b1**2) + (1 - b1) * g1 / (1 - b1)
    assert u1 == pytest.approx(mh / (math.sqrt(v1 / (1 - b2)) + eps), rel=1e-13)


def test_sgd_momentum_two_steps():
    p = [np.array([0.0, 0.0])]
    gs = [[np.array([1.0, -2.0])], [np.array([3.0, 1.0])]]
    u1, u2 = run(R.sgd(0.1, momentum=0.5), gs, p)
    np.testing.assert_allclose(u1[0], [-0.1, 0.2])  # v1 = g1
    np.testing.assert_allclose(u2[0], [-0.35, 0.0])  # v2 = 0.5*v1 + g2 = [3.5, 0]
    n1, n2 = run(R.sgd(0.1, momentum=0.5, nesterov=True), gs, p)
    np.testing.assert_allclose(n1[0], [-0.15, 0.3])  # g1 + 0.5*v1
    np.testing.assert_allclose(n2[0], [-0.475, -0.1])  # g2 + 0.5*[3.5, 0]


def test_ema_debias_constant_input():
    c = [np.array([2.5, -1.0]), np.array(4.0)]
    for ups in run(R.ema(0.9), [c] * 5, c):
        for u, x in zip(ups, c):
            np.testing.assert_allclose(u, x, rtol=1e-13)
    (u,), _ = run(R.ema(0.9, debias=False), [[np.array(1.0)]] * 2, [np.array(0.0)])
    assert u == pytest.approx(0.1)


def test_ema_scheduled_decay_debias_uses_current_value():
    ema = R.ema(lambda c: [0.5, 0.8][c])
    u1, u2 = run(ema, [[np.array(1.0)], [np.array(3.0)]], [np.array(0.0)])
    assert u1[0] == pytest.approx(1.0)  # 0.5 / (1 - 0.5)
    m2 = 0.8 * 0.5 + 0.2 * 3.0
    assert u2[0] == pytest.approx(m2 / (1 - 0.8**2))


def test_bias_correction_steps():
    u1, u2 = run(R.bias_correction(0.9), [[np.array(1.0)]] * 2, [np.array(0.0)])
    assert u1[0] == pytest.approx(10.0)
    assert u2[0] == pytest.approx(1 / 0.19)


def test_scale_and_lr_schedules():
    sched = R.linear_schedule(1.0, 0.0, 4)
    ups = run(R.scale_by_learning_rate(sched), [[np.array(2.0)]] * 3, [np.array(0.0)])
    np.testing.assert_allclose([u[0] for u in ups], [-2.0, -1.5, -1.0])
    ups = run(R.scale_by_learning_rate(0.5, flip_sign=False), [[np.array(2.0)]], [np.array(0.0)])
    assert ups[0][0] == 1.0
    ups = run(R.scale(lambda c: c + 1.0), [[np.array(2.0)]] * 2, [np.array(0.0)])
    np.testing.assert_allclose([u[0] for u in ups], [2.0, 4.0])


def test_clip_by_global_norm_hits_max_norm():
    g = [np.array([3.0, 0.0]), np.array([[4.0]]), np.zeros(0)]  # global norm 5
    (ups,) = run(R.clip_by_global_norm(2.0), [g], g)
    total = math.sqrt(sum(float(np.sum(u**2)) for u in ups))
    assert total == pytest.approx(2.0, rel=1e-14)
    np.testing.assert_allclose(ups[0], [1.2, 0.0])
    (ups,) = run(R.clip_by_global_norm(5.0), [g], g)  # at the limit: unchanged
    np.testing.assert_array_equal(ups[1], g[1])


def test_clip_and_clip_by_norm():
    g = [np.array([3.0, 4.0]), np.array([0.1, 0.0])]
    (ups,) = run(R.clip_by_norm(1.0), [g], g)
    np.testing.assert_allclose(ups[0], [0.6, 0.8])
    np.testing.assert_array_equal(ups[1], g[1])
    (ups,) = run(R.clip(0.5), [[np.array([-2.0, 0.3, 9.0])]], g)
    np.testing.assert_array_equal(ups[0], [-0.5, 0.3, 0.5])


def test_trust_ratio_zero_params_and_by_hand():
    g = [np.array([1.0, -2.0]), np.array([3.0, 4.0])]
    p = [np.zeros(2), np.array([6.0, 8.0])]
    (ups,) = run(R.scale_by_trust_ratio(), [g], p)
    np.testing.assert_array_equal(ups[0], g[0])  # ||p|| = 0 -> ratio 1
    np.testing.assert_allclose(ups[1], [6.0, 8.0])  # ratio = 10/5
    (ups,) = run(R.scale_by_trust_ratio(), [[np.zeros(2)]], [np.ones(2)])
    np.testing.assert_array_equal(ups[0], [0.0, 0.0])


def test_rss_zero_accumulator_no_nan():
    with np.errstate(all="raise"):
        (ups,) = run(
            R.scale_by_rss(initial_accumulator_value=0.0), [[np.array([0.0, 2.0])]], [np.zeros(2)]
        )
    np.testing.assert_array_equal(ups[0][0], 0.0)
    assert ups[0][1] == pytest.approx(2.0 / math.sqrt(4.0 + 1e-7))
    u1, u2 = run(R.adagrad(1.0, eps=0.0), [[np.array(3.0)], [np.array(4.0)]], [np.array(0.0)])
    assert u1[0] == pytest.approx(-3.0 / math.sqrt(9.1))
    assert u2[0] == pytest.approx(-4.0 / math.sqrt(25.1))
    (u,) = run(R.scale_by_rss(0.0, eps=0.5, eps_in_sqrt=False), [[np.array(3.0)]], [np.array(0.0)])
    assert u[0] == pytest.approx(3.0 / 3.5)


def test_adadelta_first_two_steps():
    rho, eps, g1, g2 = 0.9, 1e-6, 2.0, -1.0
    eg1 = 0.1 * g1**2
    d1 = math.sqrt(eps) / math.sqrt(eg1 + eps) * g1
    ex1 = 0.1 * d1**2
    eg2 = rho * eg1 + 0.1 * g2**2
    d2 = math.sqrt(ex1 + eps) / math.sqrt(eg2 + eps) * g2
    u1, u2 = run(R.adadelta(), [[np.array(g1)], [np.array(g2)]], [np.array(5.0)])
    assert u1[0] == pytest.approx(-d1, rel=1e-13)
    assert u2[0] == pytest.approx(-d2, rel=1e-13)
    (u,) = run(R.adadelta(0.5, weight_decay=0.1), [[np.array(0.0)]], [np.array(10.0)])
    assert u[0] == pytest.approx(-0.5 * math.sqrt(eps) / math.sqrt(0.1 + eps), rel=1e-13)


def test_rms_and_stddev():
    (u,) = run(R.scale_by_rms(), [[np.array(2.0)]], [np.array(0.0)])
    assert u[0] == pytest.approx(2.0 / math.sqrt(0.4 + 1e-8))
    (u,) = run(
        R.scale_by_rms(initial_scale=1.0, eps=0.1, eps_in_sqrt=False, bias_correction=True),
        [[np.array(2.0)]],
        [np.array(0.0)],
    )
    assert u[0] == pytest.approx(2.0 / (math.sqrt((0.9 + 0.4) / 0.1) + 0.1))
    (u,) = run(R.scale_by_stddev(eps=0.0), [[np.array(2.0)]], [np.array(0.0)])
    assert u[0] == pytest.approx(2.0 / math.sqrt(0.4 - 0.04))  # var = 0.4 - 0.2**2
    (u,) = run(R.scale_by_stddev(bias_correction=True, eps=1.0), [[np.array(2.0)]], [np.array(0.0)])
    assert u[0] == pytest.approx(2.0)  # vhat - mhat^2 = 4 - 4 = 0


def test_rmsprop_momentum_after_lr():
    u1, u2 = run(
        R.rmsprop(0.1, decay=0.0, eps=0.0, momentum=0.5),
        [[np.array(4.0)], [np.array(-3.0)]],
        [np.array(0.0)],
    )
    assert u1[0] == pytest.approx(-0.1)  # sign(g) with decay 0
    assert u2[0] == pytest.approx(0.5 * -0.1 + 0.1)


def test_lamb_one_step_two_leaves():
    p = [np.array([3.0, 4.0]), np.array(0.0)]
    g = [np.array([1.0, -1.0]), np.array(2.0)]
    (ups,) = run(R.lamb(0.1, eps=0.0, weight_decay=0.5), [g], p)
    # adam step 1 with eps=0 -> sign(g); + 0.5*p
    a0 = np.array([1.0, -1.0]) + 0.5 * p[0]  # [2.5, 1.0]
    r0 = 5.0 / np.linalg.norm(a0)
    np.testing.assert_allclose(ups[0], -0.1 * r0 * a0, rtol=1e-12)
    assert ups[1] == pytest.approx(-0.1)  # ||p|| = 0 -> ratio 1


def test_lars_one_and_two_steps_two_leaves():
    p = [np.array([3.0, 4.0]), np.array([[0.0, 0.0]])]
    g = [np.array([0.0, 10.0]), np.array([[1.0, 1.0]])]
    u1, u2 = run(R.lars(1.0, weight_decay=0.5, trust_coefficient=0.1), [g, g], p)
    a0 = np.array([1.5, 12.0])  # g + 0.5*p
    r0 = 0.1 * 5.0 / np.linalg.norm(a0)
    np.testing.assert_allclose(u1[0], -r0 * a0, rtol=1e-12)
    np.testing.assert_allclose(u1[1], [[-1.0, -1.0]])  # ||p|| = 0 -> ratio 1
    np.testing.assert_allclose(u2[0], -1.9 * r0 * a0, rtol=1e-12)  # trace: 0.9*v + g


def test_add_decayed_weights_and_identity_zero():
    (u,) = run(R.add_decayed_weights(0.1), [[np.array([1.0, 2.0])]], [np.array([10.0, -10.0])])
    np.testing.assert_allclose(u[0], [2.0, 1.0])
    (u,) = run(R.set_to_zero(), [[np.array([1.0, -2.0])]], [np.zeros(2)])
    np.testing.assert_array_equal(u[0], 0.0)
    (u,) = run(
        R.chain(R.identity(), R.scale(2.0), R.scale(-1.0)), [[np.array(3.0)]], [np.array(0.0)]
    )
    assert u[0] == -6.0


def test_schedules_at_boundaries():
    c = R.constant_schedule(0.3)
    assert c(0) == 0.3 and c(1000) == 0.3
    lin = R.linear_schedule(1.0, 0.1, transition_steps=10, transition_begin=5)
    assert lin(0) == 1.0 and lin(5) == 1.0
    assert lin(10) == pytest.approx(0.55)
    assert lin(15) == pytest.approx(0.1) and lin(100) == pytest.approx(0.1)
    assert R.linear_schedule(2.0, 0.0, 0)(7) == 2.0
    cos = R.cosine_decay_schedule(2.0, 10, alpha=0.1)
    assert cos(0) == pytest.approx(2.0)
    assert cos(5) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1))
    assert cos(10) == pytest.approx(0.2) and cos(50) == pytest.approx(0.2)
    assert R.cosine_decay_schedule(1.0, 10, exponent=2.0)(5) == pytest.approx(0.25)
    assert R.cosine_decay_schedule(3.0, 0)(4) == 3.0


# ---- complex leaves ------------------------------------------------------------------------

# Positional arguments for the references that need some; the others take their defaults.
ARGS = {
    "scale": (0.5,),
    "scale_by_schedule": (lambda count: 0.5 / (1 + count),),
    "scale_by_learning_rate": (0.1,),
    "trace": (0.9,),
    "ema": (0.9,),
    "bias_correction": (0.9,),
    "clip": (0.5,),
    "clip_by_norm": (1.0,),
    "clip_by_global_norm": (1.0,),
    "sgd": (0.1, 0.9),
    "adagrad": (0.1,),
    "rmsprop": (0.1,),
    "adam": (0.1,),
    "adamw": (0.1,),
    "lamb": (0.1,),
    "lars": (0.1,),
}


def test_complex_leaves_stay_complex_and_magnitude_states_are_real():
    params = [np.array([1 + 1j, 2 - 1j]), np.array(0.5j), np.zeros((0, 2), complex)]
    grads = [np.array([0.3 - 2j, -1j]), np.array(1.5 + 0j), np.zeros((0, 2), complex)]
    for name, factory in R.REFERENCES.items():
        ups1, ups2 = run(factory(*ARGS.get(name, ())), [grads, grads], params)
        for u, g in zip(ups2, grads):
            assert u.dtype == np.complex128 and u.shape == g.shape, name
            assert np.all(np.isfinite(u)), name
    state = R.scale_by_adam().init(params)
    assert [v.dtype for v in state[1]] == [np.complex128] * 3  # the first moment: complex
    assert [v.dtype for v in state[2]] == [np.float64] * 3  # the second: |g|**2, real


def test_complex_with_zero_imaginary_parts_is_the_real_reference():
    params = [np.array([1.0, -2.0, 0.5]), np.array(3.0)]
    grads = [
        [np.array([0.3, -2.0, 1.0]), np.array(-1.5)],
        [np.array([1.0, 0.0, -0.2]), np.array(2.0)],
    ]
    as_complex = [[g.astype(complex) for g in gs] for gs in grads]
    for name, factory in R.REFERENCES.items():
        want = run(factory(*ARGS.get(name, ())), grads, params)
        got = run(factory(*ARGS.get(name, ())), as_complex, [p.astype(complex) for p in params])
        for got_step, want_step in zip(got, want):
            for u, w in zip(got_step, want_step):
                # a complex division rounds as the real one but for an ulp
                np.testing.assert_allclose(u.real, w, rtol=1e-15, atol=0, err_msg=name)
                np.testing.assert_array_equal(u.imag, 0.0, err_msg=name)


def test_complex_adam_first_step_is_minus_lr_times_the_phase():
    g = [np.array([3 + 4j, -2j])]
    (ups,) = run(R.adam(0.01, eps=0.0, eps_root=1e-300), [g], [np.zeros(2, complex)])
    np.testing.assert_allclose(ups[0], [-0.01 * (0.6 + 0.8j), 0.01j], rtol=1e-12)


def test_complex_second_moments_are_of_abs_squared():
    g = [np.array(3 + 4j)]  # |g|**2 = 25 (g**2 would be -7 + 24j)
    p = [np.array(0j)]
    (u,) = run(R.scale_by_rms(), [g], p)
    assert u[0] == pytest.approx((3 + 4j) / math.sqrt(2.5 + 1e-8), rel=1e-14)
    (u,) = run(R.scale_by_rss(), [g], p)
    assert u[0] == pytest.approx((3 + 4j) / math.sqrt(25.1 + 1e-7), rel=1e-14)
    (u,) = run(R.scale_by_stddev(eps=0.0), [g], p)  # var = 2.5 - |0.1 g|**2 = 2.25
    assert u[0] == pytest.approx((3 + 4j) / 1.5, rel=1e-14)
    rho, eps = 0.9, 1e-6
    u1, u2 = run(R.scale_by_adadelta(), [g, [np.array(1j)]], p)
    d1 = math.sqrt(eps) / math.sqrt(2.5 + eps) * (3 + 4j)
    ex1 = (1 - rho) * abs(d1) ** 2
    eg2 = rho * 2.5 + (1 - rho) * 1.0
    assert u1[0] == pytest.approx(d1, rel=1e-14)
    assert u2[0] == pytest.approx(math.sqrt(ex1 + eps) / math.sqrt(eg2 + eps) * 1j, rel=1e-14)


def test_complex_norms_and_clipping():
    (ups,) = run(R.clip_by_global_norm(1.0), [[np.array([1.5 + 2j])]], [np.zeros(1, complex)])
    np.testing.assert_allclose(ups[0], [0.6 + 0.8j], rtol=1e-15)
    (ups,) = run(R.clip_by_norm(1.0), [[np.array([3j, 4.0])]], [np.zeros(2, complex)])
    np.testing.assert_allclose(ups[0], [0.6j, 0.8], rtol=1e-15)
    (ups,) = run(R.clip(0.5), [[np.array([2 - 0.3j, -1 + 2j])]], [np.zeros(2, complex)])
    np.testing.assert_array_equal(ups[0], [0.5 - 0.3j, -0.5 + 0.5j])  # each part clipped
    (ups,) = run(R.scale_by_trust_ratio(), [[np.array([1j])]], [np.array([3 + 4j])])
    np.testing.assert_allclose(ups[0], [5j], rtol=1e-15)  # |3+4i| / |i| = 5
