"""Gate arithmetic and initialisers (memory_cells/gates.py) against PAPER.md's formulas in float64 numpy.

Properties 1-8 and 10 of PAPER.md's list; the cell-level properties are in test_cells.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from memory_cells.gates import chrono_bias, chunked_cumax, cumax, master_gate, refine_gate, uniform_gate_bias

unit = st.floats(0.0, 1.0, allow_nan=False)


def np_sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def g_of(f: float, r: float) -> float:
    """The code's refine gate on float64 scalars."""
    return refine_gate(torch.tensor(f, dtype=torch.float64), torch.tensor(r, dtype=torch.float64)).item()


def grid() -> tuple[np.ndarray, np.ndarray]:
    """A float64 grid of (f, r) including the edges 0, 1/2 and 1."""
    values = np.concatenate([[0.0, 0.5, 1.0], np.random.default_rng(0).uniform(0, 1, 60)])
    return np.meshgrid(values, values, indexing="ij")


# Property 1: the three closed forms of g agree (and the code equals them).
def test_refine_gate_closed_forms_agree():
    f, r = grid()
    form1 = r * (1 - (1 - f) ** 2) + (1 - r) * f**2
    form2 = 2 * r * f + (1 - 2 * r) * f**2
    form3 = f + f * (1 - f) * (2 * r - 1)
    code = refine_gate(torch.from_numpy(f), torch.from_numpy(r)).numpy()
    np.testing.assert_allclose(form2, form1, atol=1e-14)
    np.testing.assert_allclose(form3, form1, atol=1e-14)
    np.testing.assert_allclose(code, form1, atol=1e-14)


# Property 2: range, g = f at r = 1/2, g = 0 iff f = 0, g = 1 iff f = 1.
@settings(max_examples=300, deadline=None)
@given(f=unit, r=unit)
def test_refine_gate_range_and_fixed_points(f, r):
    g = g_of(f, r)
    assert f**2 - 1e-15 <= g <= 1 - (1 - f) ** 2 + 1e-15
    assert g_of(f, 0.5) == pytest.approx(f, abs=1e-15)
    assert g_of(0.0, r) == 0.0 and g_of(1.0, r) == 1.0
    if 1e-100 < f < 1 - 1e-7:  # away from the ends, where f^2 underflows or 1 - (1 - f)^2 rounds to 1
        assert 0.0 < g < 1.0


# Property 3: symmetry g(1 - f, 1 - r) = 1 - g(f, r).
@settings(max_examples=300, deadline=None)
@given(f=unit, r=unit)
def test_refine_gate_symmetry(f, r):
    assert g_of(1 - f, 1 - r) == pytest.approx(1 - g_of(f, r), abs=1e-14)


# Property 4: dg/dr = 2f(1 - f) >= 0 and dg/df = 2(r + (1 - 2r) f) >= 0, by autograd.
def test_refine_gate_partial_derivatives():
    f_np, r_np = grid()
    f = torch.from_numpy(f_np).requires_grad_()
    r = torch.from_numpy(r_np).requires_grad_()
    refine_gate(f, r).sum().backward()
    np.testing.assert_allclose(r.grad.numpy(), 2 * f_np * (1 - f_np), atol=1e-14)
    np.testing.assert_allclose(f.grad.numpy(), 2 * (r_np + (1 - 2 * r_np) * f_np), atol=1e-14)
    assert (r.grad >= 0).all() and (f.grad >= 0).all()


# Property 5: gradients with respect to the pre-activations.
def test_refine_gate_gradients_wrt_preactivations():
    rng = np.random.default_rng(1)
    zf_np, zr_np = rng.normal(0, 3, 500), rng.normal(0, 3, 500)
    zf, zr = torch.from_numpy(zf_np).requires_grad_(), torch.from_numpy(zr_np).requires_grad_()
    refine_gate(torch.sigmoid(zf), torch.sigmoid(zr)).sum().backward()
    f, r = np_sigmoid(zf_np), np_sigmoid(zr_np)
    np.testing.assert_allclose(zf.grad.numpy(), f * (1 - f) * 2 * (r + (1 - 2 * r) * f), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(zr.grad.numpy(), 2 * f * (1 - f) * r * (1 - r), rtol=1e-12, atol=1e-15)


# Property 6: saturation. With r = 1, 1 - g = (1 - f)^2.
def test_refine_gate_saturates_with_half_the_preactivation():
    f = np.linspace(0, 1, 101)
    g = refine_gate(torch.from_numpy(f), torch.ones(101, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(1 - g, (1 - f) ** 2, atol=1e-15)
    for delta in (1e-2, 1e-4, 1e-6):
        f_needed = 1 - math.sqrt(delta)
        assert g_of(f_needed, 1.0) == pytest.approx(1 - delta, abs=1e-12)
        # A plain sigmoid needs logit(1 - delta); the refined gate needs logit(1 - sqrt(delta)): about half.
        ratio = math.log(f_needed / (1 - f_needed)) / math.log((1 - delta) / delta)
        assert 0.45 < ratio < 0.56
    # z_f = 8: logit(g) = log((1 + e^8)^2 - 1) = 16 + log(1 + 2 e^-8) ~ 16.0007.
    g8 = g_of(1 / (1 + math.exp(-8.0)), 1.0)
    assert math.log(g8 / (1 - g8)) == pytest.approx(16.0, abs=2e-3)


# Property 7: UGI. sigma(b_f) ~ U[1/d, 1 - 1/d] (Kolmogorov-Smirnov) and |b_f| <= log(d - 1).
@pytest.mark.parametrize("d", [8, 256, 4096])
def test_uniform_gate_bias_distribution(d):
    b = uniform_gate_bias(d, generator=torch.Generator().manual_seed(3)).double().numpy()
    assert b.shape == (d,)
    assert np.abs(b).max() <= math.log(d - 1) + 1e-5
    v = np_sigmoid(b)
    assert stats.kstest(v, stats.uniform(loc=1 / d, scale=1 - 2 / d).cdf).pvalue > 1e-3


def test_uniform_gate_bias_is_not_a_constant_or_another_law():
    # The KS test above can fail: a constant bias or U[0, 1] on the bias itself are rejected.
    d = 4096
    v = np_sigmoid(torch.rand(d, generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy())
    assert stats.kstest(v, stats.uniform(loc=1 / d, scale=1 - 2 / d).cdf).pvalue < 1e-6


def test_uniform_gate_bias_seeded_and_validated():
    a = uniform_gate_bias(64, generator=torch.Generator().manual_seed(9))
    b = uniform_gate_bias(64, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.dtype == torch.float32
    with pytest.raises(ValueError, match="hidden_size >= 2"):
        uniform_gate_bias(1)


# Property 8: chrono. 1 / (1 - sigma(b_f)) ~ U[2, T_max].
@pytest.mark.parametrize("t_max", [10.0, 784.0])
def test_chrono_bias_timescales_uniform(t_max):
    b = chrono_bias(2048, t_max, generator=torch.Generator().manual_seed(4)).double().numpy()
    timescale = 1.0 / (1.0 - np_sigmoid(b))
    assert timescale.min() >= 2 - 1e-4 and timescale.max() <= t_max + 1e-3 * t_max
    assert stats.kstest(timescale, stats.uniform(loc=2, scale=t_max - 2).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="t_max >= 2"):
        chrono_bias(8, 1.5)


# Property 10: cumax is non-decreasing and ends at 1; chunked cumax repeats each value chunk_size times.
def np_cumax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    out = np.zeros_like(p)
    total = np.zeros(p.shape[:-1])
    for k in range(p.shape[-1]):
        total = total + p[..., k]
        out[..., k] = total
    return out


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-14), (torch.float32, 2e-6)])
def test_cumax_matches_reference_monotone_and_ends_at_one(dtype, atol):
    z = np.random.default_rng(2).normal(0, 4, (5, 7, 33))
    out = cumax(torch.from_numpy(z).to(dtype)).double().numpy()
    np.testing.assert_allclose(out, np_cumax(z), atol=atol)
    assert (np.diff(out, axis=-1) >= -atol).all()
    np.testing.assert_allclose(out[..., -1], 1.0, atol=atol)
    # Along another axis.
    out0 = cumax(torch.from_numpy(z), dim=0).numpy()
    np.testing.assert_allclose(out0, np.moveaxis(np_cumax(np.moveaxis(z, 0, -1)), -1, 0), atol=1e-14)


def test_chunked_cumax_repeats_chunks():
    z = np.random.default_rng(3).normal(0, 2, (4, 6))
    out = chunked_cumax(torch.from_numpy(z), chunk_size=3).numpy()
    assert out.shape == (4, 18)
    np.testing.assert_allclose(out, np.repeat(np_cumax(z), 3, axis=-1), atol=1e-14)
    np.testing.assert_allclose(chunked_cumax(torch.from_numpy(z), 1).numpy(), np_cumax(z), atol=1e-14)


def test_master_gate_form_and_bounds():
    f, m = grid()
    g = master_gate(torch.from_numpy(f), torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(g, m**2 + m * (1 - m) * f, atol=1e-14)
    assert (g >= m**2 - 1e-15).all() and (g <= m + 1e-15).all()
    # Ordered Neurons' effective forget gate f * w + (m - w) with overlap w = m * (1 - m).
    w = m * (1 - m)
    np.testing.assert_allclose(g, f * w + (m - w), atol=1e-14)
