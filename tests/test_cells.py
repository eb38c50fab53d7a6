"""Memory cells (make_cell, unroll) against float64 numpy references written from PAPER.md's equations.

Cell-level properties 9, 11, 12, 13 of PAPER.md, torch.nn.LSTMCell / GRUCell equality,
unroll == single steps, gradients, initialisers inside cells, and config validation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import memory_cells
from memory_cells import make_cell, unroll

# PAPER.md section 4, restated here independently of memory_cells/spec.py.
PAPER_VARIANTS = {
    "standard": ("sigmoid", "none"),
    "tied": ("sigmoid", "none"),
    "chrono": ("chrono", "none"),
    "u": ("uniform", "none"),
    "r": ("sigmoid", "refine"),
    "ur": ("uniform", "refine"),
    "o": ("cumax", "none"),
    "m": ("sigmoid", "master"),
    "om": ("cumax", "master"),
    "or": ("cumax", "refine"),
    "um": ("uniform", "master"),
}
RECURRENT = [(c, g) for c in ("lstm", "gru") for g in PAPER_VARIANTS]
ALL = [*RECURRENT, ("none", "standard")]
IN, H, B, T = 5, 8, 3, 7


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run on one intra-op thread: the tensors are tiny, and on a shared, loaded CPU the
    extra thread's synchronisation made these tests over ten times slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_cumax(z, chunk):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.repeat(np.cumsum(e / e.sum(axis=-1, keepdims=True), axis=-1), chunk, axis=-1)


def split_slots(z, cell, gate, untied, chunk):
    """Split ``[B, W]`` pre-activations by the documented slot order (memory_cells/bias.py)."""
    primary, aux = PAPER_VARIANTS[gate]
    aux_slot = "i" if untied else {"none": None, "refine": "r", "master": "m"}[aux]
    width = {"f": H // chunk if primary == "cumax" else H, "m": H // chunk}
    aux_slots = [aux_slot] if aux_slot else []
    names = [*aux_slots, "f", "u", "o"] if cell == "lstm" else ["reset", "f", *aux_slots, "u"]
    edges = np.cumsum([0] + [width.get(n, H) for n in names])
    return {n: z[:, edges[k] : edges[k + 1]] for k, n in enumerate(names)}


def np_gates(zs, gate, chunk):
    """f and the effective forget gate g from PAPER.md sections 2-3 (refine in its first closed form)."""
    primary, aux = PAPER_VARIANTS[gate]
    f = np_cumax(zs["f"], chunk) if primary == "cumax" else np_sigmoid(zs["f"])
    if aux == "refine":
        r = np_sigmoid(zs["r"])
        return f, r * (1 - (1 - f) ** 2) + (1 - r) * f**2
    if aux == "master":
        m = np_cumax(zs["m"], chunk)
        return f, m**2 + m * (1 - m) * f
    return f, f


def np_unroll(module, cell, gate, x, is_first, state, untied=False, chunk=1):
    """A slow float64 reference: loops over time and batch entries for the resets."""
    w_ih, w_hh = (getattr(module, n).detach().double().numpy() for n in ("weight_ih", "weight_hh"))
    bias = module.gate_bias().detach().double().numpy()
    h = state[0].copy()
    c = state[1].copy() if cell == "lstm" else None
    outputs = []
    for t in range(x.shape[0]):
        for b in range(x.shape[1]):
            if is_first[t, b]:
                h[b] = 0.0
                if c is not None:
                    c[b] = 0.0
        zx = split_slots(x[t] @ w_ih.T + bias, cell, gate, untied, chunk)
        zh = split_slots(h @ w_hh.T, cell, gate, untied, chunk)
        if cell == "lstm":
            zs = {k: zx[k] + zh[k] for k in zx}
            f, g = np_gates(zs, gate, chunk)
            u, o = np.tanh(zs["u"]), np_sigmoid(zs["o"])
            c = f * c + np_sigmoid(zs["i"]) * u if untied else g * c + (1 - g) * u
            h = o * np.tanh(c)
        else:
            zs = {k: zx[k] + zh[k] for k in zx if k != "u"}
            f, g = np_gates(zs, gate, chunk)
            s = np_sigmoid(zs["reset"])
            n = np.tanh(zx["u"] + s * (zh["u"] + module.bias_hn.detach().double().numpy()))
            h = g * h + (1 - g) * n
        outputs.append(h.copy())
    return np.stack(outputs), h, c


def inputs(seed=0, t=T, b=B):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(t, b, IN, generator=gen, dtype=torch.float64)
    is_first = torch.zeros(t, b, dtype=torch.bool)
    is_first[0, 0] = is_first[3, 1] = is_first[4, 1] = is_first[5, :] = True
    return x, is_first


def scramble(module, seed=0, scale=1.5):
    """Random weights and biases, larger than the initialisation, so that every gate matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


CASES = [(c, g, {}) for c, g in RECURRENT] + [
    ("lstm", "chrono", {"untied": True, "t_max": 30.0}),
    ("lstm", "o", {"chunk_size": 2}),
    ("gru", "om", {"chunk_size": 4}),
    ("lstm", "um", {"chunk_size": 2, "extra_bias": True}),
    ("lstm", "ur", {"refine_bias": "shared"}),
    ("gru", "ur", {"trainable_bias": False, "extra_bias": True}),
]


@pytest.mark.parametrize("cell, gate, options", CASES, ids=lambda v: str(v))
def test_unroll_matches_numpy_reference(cell, gate, options):
    torch.manual_seed(1)
    module = scramble(make_cell(cell, gate, IN, H, **options).double())
    x, is_first = inputs()
    state = tuple(torch.randn(B, H, dtype=torch.float64) for _ in module.initial_state(B))
    h, final = unroll(module, x, is_first, state)
    untied = options.get("untied", False) or (cell, gate) == ("lstm", "standard")
    ref_h, ref_hT, ref_cT = np_unroll(
        module,
        cell,
        gate,
        x.numpy(),
        is_first.numpy(),
        [s.numpy() for s in state],
        untied,
        options.get("chunk_size", 1),
    )
    np.testing.assert_allclose(h.detach().numpy(), ref_h, atol=1e-12)
    np.testing.assert_allclose(final[0].detach().numpy(), ref_hT, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(final[1].detach().numpy(), ref_cT, atol=1e-12)


def test_lstm_standard_equals_torch_lstmcell():
    torch.manual_seed(2)
    ref = torch.nn.LSTMCell(IN, H)
    cell = make_cell("lstm", "standard", IN, H)
    with torch.no_grad():
        cell.weight_ih.copy_(ref.weight_ih)
        cell.weight_hh.copy_(ref.weight_hh)
        for slot, chunk in zip("ifuo", (ref.bias_ih + ref.bias_hh).chunk(4), strict=True):
            getattr(cell.gate_bias, f"bias_{slot}").copy_(chunk)
    x, state = torch.randn(B, IN), (torch.randn(B, H), torch.randn(B, H))
    h, (h2, c) = cell(x, state)
    ref_h, ref_c = ref(x, state)
    torch.testing.assert_close(h, ref_h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c, ref_c, atol=1e-6, rtol=1e-5)
    assert h2 is h


def test_gru_standard_equals_torch_grucell():
    torch.manual_seed(3)
    ref = torch.nn.GRUCell(IN, H)
    cell = make_cell("gru", "standard", IN, H)
    with torch.no_grad():
        cell.weight_ih.copy_(ref.weight_ih)
        cell.weight_hh.copy_(ref.weight_hh)
        (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = ref.bias_ih.chunk(3), ref.bias_hh.chunk(3)
        cell.gate_bias.bias_reset.copy_(b_ir + b_hr)
        cell.gate_bias.bias_f.copy_(b_iz + b_hz)
        cell.gate_bias.bias_u.copy_(b_in)
        cell.bias_hn.copy_(b_hn)
    x, h0 = torch.randn(B, IN), torch.randn(B, H)
    h, (h_state,) = cell(x, (h0,))
    torch.testing.assert_close(h, ref(x, h0), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell, gate", ALL)
def test_unroll_equals_single_steps_and_reports_gates(cell, gate):
    torch.manual_seed(4)
    module = make_cell(cell, gate, IN, H)
    x, is_first = inputs(seed=5)
    x = x.float()
    state = tuple(torch.randn_like(s) for s in module.initial_state(B))
    with torch.no_grad():
        h, final, gates = unroll(module, x, is_first, state, collect_gates=True)
        step_state, step_h, step_gates = state, [], []
        for t in range(T):
            keep = (~is_first[t]).float()[:, None]
            step_state = tuple(s * keep for s in step_state)
            plain_h, _ = module(x[t], step_state)
            out, step_state, g = module.step_with_gates(x[t], step_state)
            assert torch.equal(plain_h, out)
            step_h.append(out)
            step_gates.append(g)
    assert torch.allclose(h, torch.stack(step_h), atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(final, step_state, strict=True))
    expected_keys = set() if cell == "none" else {"f", "g"} | {"r": {"r"}, "m": {"m"}}.get(gate[-1], set())
    assert set(gates) == expected_keys
    for k in gates:
        assert gates[k].shape == (T, B, H)
        assert torch.allclose(gates[k], torch.stack([g[k] for g in step_gates]), atol=1e-6)
    assert unroll(module, x, is_first, state)[0].shape == (T, B, H)


def step_by_step(module, x, is_first, state):
    """The reference unroll: ``module(x_t, state)`` per step (plain autograd), zeroing reset entries."""
    outputs = []
    for t in range(x.shape[0]):
        state = tuple(s * (~is_first[t]).to(s.dtype)[:, None] for s in state)
        out, state = module(x[t], state)
        outputs.append(out)
    return torch.stack(outputs), state


@pytest.mark.parametrize("cell, gate", ALL)
def test_unroll_gradients_equal_single_step_gradients(cell, gate):
    # unroll defers the recurrent weight gradient to one matmul (memory_cells/recurrent_product.py);
    # the single steps use plain autograd.
    torch.manual_seed(16)
    module = make_cell(cell, gate, IN, H).double()
    x, is_first = inputs(seed=17)
    x.requires_grad_()
    state = tuple(torch.randn_like(s).requires_grad_() for s in module.initial_state(B))
    weights = torch.arange(H, dtype=torch.float64)  # weight the units differently

    def loss(h, final):
        return (h * weights).sum() + sum(s.square().sum() for s in final)

    wrt = [x, *state, *module.parameters()]
    grads = torch.autograd.grad(loss(*unroll(module, x, is_first, state)), wrt)
    expected = torch.autograd.grad(loss(*step_by_step(module, x, is_first, state)), wrt)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


def test_deferred_weight_gradient_survives_repeated_and_partial_backward():
    torch.manual_seed(18)
    module = make_cell("lstm", "ur", IN, H).double()
    x, is_first = inputs(seed=19)
    x.requires_grad_()
    h, _ = unroll(module, x, is_first, module.initial_state(B))
    (only_x,) = torch.autograd.grad(h.sum(), [x], retain_graph=True)  # no weight gradient asked for
    first = torch.autograd.grad(h.sum(), [module.weight_hh, x], retain_graph=True)
    second = torch.autograd.grad(h[:2].sum(), [module.weight_hh], retain_graph=True)  # only steps 0, 1
    third = torch.autograd.grad(h.sum(), [module.weight_hh, x])
    eager_h, _ = step_by_step(module, x, is_first, module.initial_state(B))  # plain autograd
    torch.testing.assert_close(first[0], torch.autograd.grad(eager_h.sum(), [module.weight_hh], retain_graph=True)[0])
    torch.testing.assert_close(second[0], torch.autograd.grad(eager_h[:2].sum(), [module.weight_hh])[0])
    torch.testing.assert_close(third[0], first[0])
    torch.testing.assert_close(first[1], only_x)


# Property 13: running over episode resets equals running each episode separately from a zero state.
@pytest.mark.parametrize("cell, gate", ALL)
def test_reset_equals_separate_episodes(cell, gate):
    torch.manual_seed(6)
    module = make_cell(cell, gate, IN, H)
    x = torch.randn(9, 2, IN)
    is_first = torch.zeros(9, 2, dtype=torch.bool)
    is_first[4, 0] = True  # entry 0: episodes [0, 4) and [4, 9); entry 1: one episode with a random start
    state = tuple(torch.randn_like(s) for s in module.initial_state(2))
    h, _ = unroll(module, x, is_first, state)
    zero = module.initial_state(1)
    first, _ = unroll(module, x[:4, :1], torch.zeros(4, 1, dtype=torch.bool), tuple(s[:1] for s in state))
    second, _ = unroll(module, x[4:, :1], torch.zeros(5, 1, dtype=torch.bool), zero)
    other, _ = unroll(module, x[:, 1:], torch.zeros(9, 1, dtype=torch.bool), tuple(s[1:] for s in state))
    torch.testing.assert_close(h[:, :1], torch.cat([first, second]), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h[:, 1:], other, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell, gate, options", CASES, ids=lambda v: str(v))
def test_gradients_reach_every_parameter(cell, gate, options):
    torch.manual_seed(7)
    module = make_cell(cell, gate, IN, H, **options)
    x, is_first = inputs(seed=8)
    h, state = unroll(module, x.float(), is_first, module.initial_state(B))
    (h.square().sum() + sum(s.square().sum() for s in state)).backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# Property 12: UR-LSTM has exactly the classic LSTM's parameters: 4H(IN + H) weights and 4H biases.
def test_parameter_counts():
    classic = 4 * H * (IN + H) + 4 * H
    assert count(make_cell("lstm", "standard", IN, H)) == classic
    assert count(make_cell("lstm", "ur", IN, H)) == classic
    assert count(make_cell("lstm", "ur", IN, H, refine_bias="shared")) == classic - H
    assert count(make_cell("lstm", "tied", IN, H)) == 3 * H * (IN + H) + 3 * H
    assert count(make_cell("gru", "standard", IN, H)) == count(torch.nn.GRUCell(IN, H)) - 2 * H
    assert count(make_cell("none", "standard", IN, H)) == H * IN + H


# Property 9: with all affine parts zero (UR at initialisation) r = 1 - f and g = f (2 f^2 - 3 f + 2).
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ur_at_initialisation(cell):
    torch.manual_seed(9)
    module = make_cell(cell, "ur", IN, 64).double()
    with torch.no_grad():
        module.weight_ih.zero_()
        module.weight_hh.zero_()
    state = tuple(torch.randn_like(s) for s in module.initial_state(B))
    _, _, gates = module.step_with_gates(torch.randn(B, IN, dtype=torch.float64), state)
    f = np_sigmoid(module.gate_bias.bias_f.detach().numpy())
    np.testing.assert_allclose(gates["f"].detach().numpy(), np.broadcast_to(f, (B, 64)), atol=1e-14)
    np.testing.assert_allclose(gates["r"].detach().numpy(), np.broadcast_to(1 - f, (B, 64)), atol=1e-14)
    np.testing.assert_allclose(
        gates["g"].detach().numpy(), np.broadcast_to(f * (2 * f**2 - 3 * f + 2), (B, 64)), atol=1e-14
    )


# Property 11: the tied update keeps |c_t| <= max(|c_{t-1}|, 1).
@pytest.mark.parametrize("gate", [g for g in PAPER_VARIANTS if g != "standard"])
def test_tied_update_bounds_cell_state(gate):
    torch.manual_seed(10)
    module = scramble(make_cell("lstm", gate, IN, H).double(), seed=11, scale=3.0)
    h, c = module.initial_state(16)
    c = 3.0 * torch.randn(16, H, dtype=torch.float64)
    c[:8] = c[:8].clamp(-0.5, 0.5)  # also start inside [-1, 1], where the bound is 1
    for _ in range(20):
        previous = c
        _, (h, c) = module(4.0 * torch.randn(16, IN, dtype=torch.float64), (h, c))
        assert (c.abs() <= torch.clamp(previous.abs(), min=1.0) + 1e-12).all()


def test_untied_lstm_can_exceed_the_tied_bound():
    # The bound of property 11 is specific to the tied update: the classic LSTM breaks it.
    module = make_cell("lstm", "standard", IN, H).double()
    with torch.no_grad():
        module.weight_ih.zero_()
        module.weight_hh.zero_()
        for slot in "ifuo":
            getattr(module.gate_bias, f"bias_{slot}").fill_(10.0)
    state = (torch.zeros(1, H, dtype=torch.float64), torch.ones(1, H, dtype=torch.float64))
    _, (_, c) = module(torch.zeros(1, IN, dtype=torch.float64), state)
    assert (c > 1.9).all()


# Property 8 inside the cell: chrono's b_f timescales lie in [2, t_max], and b_i = -b_f when untied.
def test_chrono_cell_biases():
    torch.manual_seed(12)
    module = make_cell("lstm", "chrono", IN, 512, t_max=50.0, untied=True)
    b_f = module.gate_bias.bias_f.detach().double().numpy()
    timescale = 1 + np.exp(b_f)  # 1 / (1 - sigmoid(b_f))
    assert timescale.min() >= 2 - 1e-4 and timescale.max() <= 50 + 1e-3 and timescale.std() > 5
    torch.testing.assert_close(module.gate_bias.bias_i, -module.gate_bias.bias_f)
    assert not hasattr(make_cell("lstm", "chrono", IN, 8).gate_bias, "bias_i")  # tied by default


# Property 7 inside the cell, and the UR choices of PAPER.md.
def test_ugi_cell_biases_and_ur_choices():
    torch.manual_seed(13)
    d = 256
    bias = make_cell("lstm", "ur", IN, d).gate_bias
    assert bias.bias_f.abs().max() <= math.log(d - 1) + 1e-5 and bias.bias_f.std() > 1.0
    torch.testing.assert_close(bias.bias_r, -bias.bias_f)  # separate (default): its own tensor, initialised to -b_f
    assert bias.bias_r.requires_grad and bias.bias_r.data_ptr() != bias.bias_f.data_ptr()
    torch.testing.assert_close(bias.bias_u, torch.zeros(d))

    shared = make_cell("lstm", "ur", IN, d, refine_bias="shared").gate_bias
    with torch.no_grad():
        shared.bias_f.add_(1.0)
    torch.testing.assert_close(shared.slot_bias("r"), -shared.bias_f)

    fixed = make_cell("lstm", "ur", IN, d, trainable_bias=False).gate_bias
    names = {n for n, _ in fixed.named_parameters()}
    assert "bias_f" not in names and "bias_r" not in names and "bias_f" in dict(fixed.named_buffers())

    extra = make_cell("gru", "u", IN, d, extra_bias=True).gate_bias
    torch.testing.assert_close(extra.extra_bias_f, torch.zeros(d))
    torch.testing.assert_close(extra.slot_bias("f"), extra.bias_f)


def test_forget_bias_option():
    assert torch.equal(make_cell("lstm", "standard", IN, H).gate_bias.bias_f, torch.ones(H))
    assert torch.equal(make_cell("gru", "r", IN, H, forget_bias=2.5).gate_bias.bias_f, torch.full((H,), 2.5))


def test_none_cell_is_a_stateless_tanh_layer():
    module = make_cell("none", "standard", IN, H)
    x = torch.randn(4, B, IN)
    assert module.initial_state(B) == ()
    h, state, gates = unroll(module, x, torch.zeros(4, B, dtype=torch.bool), (), collect_gates=True)
    assert state == () and gates == {}
    torch.testing.assert_close(h, torch.tanh(x @ module.weight.T + module.bias))


def test_registry_matches_config_schema():
    from configs import schema

    assert memory_cells.CELLS == schema.CELLS
    assert memory_cells.GATES == schema.GATES


@pytest.mark.parametrize(
    "args, options, message",
    [
        (("lstmm", "ur"), {}, "unknown cell 'lstmm'; valid cells: lstm, gru, none"),
        (("lstm", "uur"), {}, "unknown gate 'uur'; valid gates: standard, tied, chrono"),
        (("none", "ur"), {}, "takes only gate 'standard'"),
        (("lstm", "ur"), {"t_max": 5}, "unknown option 't_max' for lstm/ur; valid options: trainable_bias, extra_bias"),
        (("gru", "chrono"), {"untied": True}, "unknown option 'untied' for gru/chrono; valid options: t_max"),
        (("lstm", "chrono"), {"t_max": 1}, "t_max=1 is invalid: expected a number >= 2"),
        (("lstm", "o"), {"chunk_size": 3}, "chunk_size=3 is invalid: expected a positive divisor of hidden_size=8"),
        (("lstm", "ur"), {"refine_bias": "own"}, "refine_bias='own' is invalid"),
        (("lstm", "u"), {"trainable_bias": "yes"}, "expected true or false"),
    ],
)
def test_make_cell_rejects_bad_choices_in_one_line(args, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        make_cell(*args, IN, H, **options)
    assert "\n" not in str(info.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cell, gate", [("lstm", "standard"), ("lstm", "ur"), ("gru", "om"), ("none", "standard")])
def test_runs_on_cuda_like_on_cpu(cell, gate):
    torch.manual_seed(14)
    module = make_cell(cell, gate, IN, H)
    x, is_first = inputs(seed=15)
    h_cpu, _ = unroll(module, x.float(), is_first, module.initial_state(B))
    module = module.cuda()
    h, state = unroll(module, x.float().cuda(), is_first.cuda(), module.initial_state(B, device="cuda"))
    h.sum().backward()
    assert h.is_cuda and all(s.is_cuda for s in state)
    torch.testing.assert_close(h.cpu(), h_cpu, atol=1e-5, rtol=1e-4)
