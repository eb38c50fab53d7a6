"""The compiled unroll (memory_cells/compiled.py) against the reference ``unroll``, on the CPU.

For every cell x gate variant that ``make_cell`` builds: outputs, final state, gate activations and
the gradients into the inputs, the initial state and every parameter, with episode resets at step 0
and inside the unroll. The sweep uses ``torch.compile``'s ``aot_eager`` backend, which traces the same
graphs (one per variant, no graph breaks: ``fullgraph=True``) and differentiates them as inductor
would, but runs them without code generation; one case runs inductor's own C++ kernels where a
compiler exists. Chunked compilation (``chunk_steps``, for the supervised tasks' long sequences) against
the same reference, with resets inside chunks and on their boundaries, and its graph reused from chunk to
chunk. Then the config switch (``agent.core.compile``) and its wiring into the agent's core.
"""

from __future__ import annotations

import copy
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import memory_cells.compiled
from agents import Agent
from agents.core import Core
from configs.loader import ConfigError, load_config
from configs.schema import COMPILE_CHOICES, AgentConfig, CoreConfig, LearnerConfig
from learner.learner import Learner
from memory_cells import CELLS, GATES, CompiledUnroll, make_cell, unroll, use_compiled

T, B, IN, H = 5, 3, 5, 4


def buildable(cell: str, gate: str) -> bool:
    """Whether ``make_cell`` accepts the pair (the memoryless ``none`` takes only ``standard``)."""
    try:
        make_cell(cell, gate, IN, H)
    except ValueError:
        return False
    return True


# Every variant the factory builds, with default options; then the options that change the graph.
VARIANTS = [(c, g, {}) for c in CELLS for g in GATES if buildable(c, g)]
OPTION_CASES = [
    ("lstm", "chrono", {"untied": True}),
    ("lstm", "om", {"chunk_size": 2}),
    ("gru", "or", {"chunk_size": 2}),
    ("lstm", "ur", {"refine_bias": "shared", "trainable_bias": False, "extra_bias": True}),
]


def episode_starts() -> torch.Tensor:
    """``is_first [T, B]``: entry 1 starts at step 0, entry 0 at steps 2 and 4, entry 2 at step 4."""
    is_first = torch.zeros(T, B, dtype=torch.bool)
    is_first[0, 1] = is_first[2, 0] = is_first[4, 0] = is_first[4, 2] = True
    return is_first


def inputs(cell: torch.nn.Module, dtype: torch.dtype, steps: int = T) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Random ``x [steps, B, IN]`` and a random (non-zero, so that resets show) initial state, both needing grad."""
    generator = torch.Generator().manual_seed(1)
    device = next(cell.parameters()).device
    x = torch.randn(steps, B, IN, generator=generator, dtype=dtype).to(device).requires_grad_()
    shapes = [s.shape for s in cell.initial_state(B)]
    state = tuple(torch.randn(shape, generator=generator, dtype=dtype).to(device).requires_grad_() for shape in shapes)
    return x, state


def run_and_differentiate(run, cell, x, is_first, state, collect_gates):
    """Outputs of ``run`` and the gradients of a random linear function of all of them (gates included)."""
    result = run(cell, x, is_first.to(x.device), state, collect_gates)
    outputs = [result[0], *result[1], *(result[2].values() if collect_gates else ())]
    generator = torch.Generator().manual_seed(2)
    weights = [torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device) for out in outputs]
    loss = sum((out * weight).sum() for out, weight in zip(outputs, weights, strict=True))
    wrt = [x, *state, *cell.parameters()]
    return result, torch.autograd.grad(loss, wrt)


def assert_same_as_reference(cell, compiled, dtype, collect_gates=True, is_first=None, **tolerance):
    is_first = episode_starts() if is_first is None else is_first
    x, state = inputs(cell, dtype, steps=is_first.shape[0])
    got, got_grads = run_and_differentiate(compiled, cell, x, is_first, state, collect_gates)
    want, want_grads = run_and_differentiate(unroll, cell, x, is_first, state, collect_gates)
    torch.testing.assert_close(got[0], want[0], **tolerance)
    torch.testing.assert_close(got[1], want[1], **tolerance)  # the final state
    if collect_gates:
        assert list(got[2]) == list(want[2])
        torch.testing.assert_close(got[2], want[2], **tolerance)
    names = ["x"] + [f"state[{i}]" for i in range(len(state))] + [n for n, _ in cell.named_parameters()]
    for name, g, w in zip(names, got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, msg=lambda m, name=name: f"d/d{name}: {m}", **tolerance)


@pytest.mark.parametrize(("cell", "gate", "options"), VARIANTS + OPTION_CASES)
def test_compiled_unroll_equals_the_reference(cell: str, gate: str, options: dict) -> None:
    torch.manual_seed(0)
    module = make_cell(cell, gate, IN, H, **options).double()
    compiled = CompiledUnroll(backend="aot_eager")  # fullgraph=True: a graph break would raise here
    assert_same_as_reference(module, compiled, torch.float64, rtol=1e-10, atol=1e-12)
    assert len(compiled.compile_seconds) == 1


def test_sweep_covers_every_variant_of_the_factory() -> None:
    assert {(c, g) for c, g, _ in VARIANTS} == {(c, g) for c in CELLS for g in GATES if c != "none"} | {
        ("none", "standard")
    }


def test_without_gates_and_without_grad_and_compiled_once_per_shape() -> None:
    torch.manual_seed(0)
    cell = make_cell("lstm", "ur", IN, H).double()
    compiled = CompiledUnroll(backend="aot_eager")
    assert_same_as_reference(cell, compiled, torch.float64, collect_gates=False, rtol=1e-10, atol=1e-12)
    x, state = inputs(cell, torch.float64)
    compiled(cell, x, episode_starts(), state)  # the same shape again: no new compile
    assert len(compiled.compile_seconds) == 1
    with torch.no_grad():  # the actors' kind of call (inference only)
        h, final = compiled(cell, x, episode_starts(), state)
        h_ref, final_ref = unroll(cell, x, episode_starts(), state)
    torch.testing.assert_close((h, final), (h_ref, final_ref), rtol=1e-10, atol=1e-12)
    assert len(compiled.compile_seconds) == 2 and all(s > 0 for s in compiled.compile_seconds.values())


# Chunked: T = 8 in chunks of 3 (3 + 3 + 2, the last chunk shorter). Entry 1 starts at step 0, entry 0 at
# step 3 (a chunk's first step: the reset meets the state carried across the boundary) and at step 7 (inside
# the last chunk), entry 2 at step 4 (inside a chunk).
CHUNK_T, CHUNK_STEPS = 8, 3


def chunked_episode_starts() -> torch.Tensor:
    is_first = torch.zeros(CHUNK_T, B, dtype=torch.bool)
    is_first[0, 1] = is_first[3, 0] = is_first[7, 0] = is_first[4, 2] = True
    return is_first


@pytest.mark.parametrize(("cell", "gate"), [("lstm", "ur"), ("lstm", "standard"), ("gru", "ur")])
def test_chunked_unroll_equals_the_reference(cell: str, gate: str) -> None:
    torch.manual_seed(0)
    module = make_cell(cell, gate, IN, H).double()
    compiled = CompiledUnroll(backend="aot_eager", chunk_steps=CHUNK_STEPS)
    assert_same_as_reference(module, compiled, torch.float64, is_first=chunked_episode_starts(), rtol=1e-10, atol=1e-12)
    # One graph for the two full chunks, one for the shorter last chunk.
    assert [key[1][0] for key in compiled.compile_seconds] == [CHUNK_STEPS, CHUNK_T % CHUNK_STEPS]


def test_cuda_graph_mode_marks_one_step_per_call_not_per_chunk(monkeypatch) -> None:
    """Under ``reduce-overhead`` a call's chunks feed each other, so only the call may start a new
    CUDA-graph step; a mark between chunks would free the outputs the next chunk still needs."""
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(len(calls)))
    calls = []
    compiled = CompiledUnroll(mode="reduce-overhead", chunk_steps=CHUNK_STEPS)
    # The eager, traceable unroll in place of the compiled graph: CUDA graphs need a GPU.
    monkeypatch.setattr(compiled, "_run", lambda *args: calls.append(1) or memory_cells.compiled.masked_unroll(*args))
    cell = make_cell("lstm", "ur", IN, H)
    for _ in range(2):
        h, _ = compiled(cell, torch.randn(CHUNK_T, B, IN), chunked_episode_starts(), cell.initial_state(B))
        h.sum().backward()
    chunks = -(-CHUNK_T // CHUNK_STEPS)
    assert len(calls) == 2 * chunks and marks == [0, chunks]  # one mark before each call's first chunk
    plain = CompiledUnroll(chunk_steps=CHUNK_STEPS)
    monkeypatch.setattr(plain, "_run", memory_cells.compiled.masked_unroll)
    plain(cell, torch.randn(CHUNK_T, B, IN), chunked_episode_starts(), cell.initial_state(B))
    assert marks == [0, chunks]  # the default mode marks nothing


def test_chunks_reuse_one_graph_also_from_a_state_that_needs_no_gradient() -> None:
    """What the supervised model does: zero initial state without grad, x without grad, weights with grad."""
    torch.manual_seed(0)
    cell = make_cell("lstm", "ur", IN, H).double()
    counter = CompileCounterWithBackend("aot_eager")  # counts the graphs that torch.compile really builds
    compiled = CompiledUnroll(backend=counter, chunk_steps=CHUNK_STEPS)
    x = torch.randn(CHUNK_T, B, IN, dtype=torch.float64)
    for _ in range(2):  # the second call compiles nothing
        h, _ = compiled(cell, x, chunked_episode_starts(), cell.initial_state(B))
        h.sum().backward()
    # One graph for the full chunks (the first one's state is made a leaf needing grad, like the later ones'),
    # one for the last chunk; compile_seconds has one key per graph really built.
    assert counter.frame_count == 2 and len(compiled.compile_seconds) == 2
    want, _ = unroll(cell, x, chunked_episode_starts(), cell.initial_state(B))
    torch.testing.assert_close(h, want, rtol=1e-10, atol=1e-12)
    # A sequence no longer than a chunk runs whole, as without chunks: its state needs no gradient, a graph apart.
    compiled(cell, x[:CHUNK_STEPS], chunked_episode_starts()[:CHUNK_STEPS], cell.initial_state(B))
    assert counter.frame_count == 3 and len(compiled.compile_seconds) == 3
    with pytest.raises(ValueError, match="chunk_steps must be at least 1"):
        CompiledUnroll(chunk_steps=0)


def cpp_compiler_missing() -> bool:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return shutil.which(get_cpp_compiler()) is None
    except Exception:  # no inductor, or no compiler it can find
        return True


@pytest.mark.slow
@pytest.mark.skipif(cpp_compiler_missing(), reason="inductor's CPU backend needs a C++ compiler")
def test_inductor_kernels_equal_the_reference() -> None:
    """Inductor's generated code (C++ on the CPU; Triton on a GPU), float32. Cold, it compiles for ~30 s."""
    torch.manual_seed(0)
    cell = make_cell("lstm", "ur", IN, H)
    assert_same_as_reference(cell, CompiledUnroll(), torch.float32, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("cell", "gate"), [("lstm", "ur"), ("gru", "om")])
def test_inductor_on_cuda_equals_the_reference(cell: str, gate: str) -> None:
    """Inductor's Triton kernels on the GPU, the path that ``auto`` takes there."""
    torch.manual_seed(0)
    module = make_cell(cell, gate, IN, H).cuda()
    assert_same_as_reference(module, CompiledUnroll(), torch.float32, rtol=1e-4, atol=1e-5)


def test_auto_compiles_on_cuda_only_and_on_off_force_it() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object, no GPU needed
    assert not use_compiled("auto", cpu) and use_compiled("auto", cuda)
    assert use_compiled("on", cpu) and use_compiled("on", cuda)
    assert not use_compiled("off", cpu) and not use_compiled("off", cuda)
    with pytest.raises(ValueError, match=r"^unknown compile choice 'fast'; valid choices: auto, on, off$"):
        use_compiled("fast", cpu)


def test_config_switch_reads_on_off_and_refuses_other_values_in_one_line() -> None:
    assert load_config().agent.core.compile == "auto"
    assert (
        COMPILE_CHOICES == memory_cells.compiled.COMPILE_CHOICES
    )  # configs/ does not import memory_cells: kept equal here
    # YAML 1.1 reads on/off as booleans; the choice field takes them back as the words.
    assert load_config(None, ["agent.core.compile=on"]).agent.core.compile == "on"
    assert load_config(None, ["agent.core.compile=off"]).agent.core.compile == "off"
    with pytest.raises(ConfigError) as error:
        load_config(None, ["agent.core.compile=always"])
    assert str(error.value) == "config key 'agent.core.compile' = 'always' is not one of: auto, on, off"


def test_core_on_cpu_stays_eager_by_default_and_compiled_on_request_gives_the_same_results() -> None:
    config = CoreConfig(cell="lstm", gate="ur", hidden_size=H, num_layers=2)
    torch.manual_seed(0)
    eager = Core(IN, config)
    forced = Core(IN, CoreConfig(cell="lstm", gate="ur", hidden_size=H, num_layers=2, compile="on"))
    forced.compiled_unroll = CompiledUnroll(backend="aot_eager")  # no C++ build in this test
    forced.load_state_dict(eager.state_dict())
    assert list(forced.state_dict()) == list(eager.state_dict())  # checkpoints keep their format
    x = torch.randn(T, B, IN)
    state = tuple(torch.randn_like(s) for s in eager.initial_state(B))
    want = eager(x, episode_starts(), state, collect_gates=True)
    got = forced(x, episode_starts(), state, collect_gates=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not eager.compiled_unroll.compile_seconds  # auto on the CPU: the eager reference
    assert len(forced.compiled_unroll.compile_seconds) == 2  # one graph per layer width (IN, then H)
    assert list(forced.state_dict()) == list(eager.state_dict())
    clone = copy.deepcopy(forced)  # a core that has compiled still copies; the copy compiles its own graphs
    assert clone.compiled_unroll.compile_seconds == {} and list(clone.state_dict()) == list(eager.state_dict())


def test_core_compiled_in_chunks_gives_the_same_results_and_the_chunk_length_is_validated() -> None:
    torch.manual_seed(0)
    eager = Core(IN, CoreConfig(cell="lstm", gate="ur", hidden_size=H))
    chunked = Core(IN, CoreConfig(cell="lstm", gate="ur", hidden_size=H, compile="on", compile_chunk=2))
    assert chunked.compiled_unroll.chunk_steps == 2 and eager.compiled_unroll.chunk_steps is None
    chunked.compiled_unroll.backend = "aot_eager"  # no C++ build in this test
    chunked.load_state_dict(eager.state_dict())
    x = torch.randn(T, B, IN)
    state = tuple(torch.randn_like(s) for s in eager.initial_state(B))
    torch.testing.assert_close(chunked(x, episode_starts(), state), eager(x, episode_starts(), state))
    assert load_config(None, ["agent.core.compile_chunk=20"]).agent.core.compile_chunk == 20
    with pytest.raises(ConfigError, match="agent.core.compile_chunk"):
        load_config(None, ["agent.core.compile_chunk=-1"])


def test_checkpoints_neither_record_nor_compare_the_compile_choice() -> None:
    """``compile`` picks a code path, not a model: a run compiled on a GPU resumes with ``off`` on a CPU."""
    observations = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def learner(choice: str) -> Learner:
        torch.manual_seed(0)
        core = CoreConfig(cell="lstm", gate="ur", hidden_size=H, compile=choice)
        agent = Agent(observations, gym.spaces.Discrete(2), AgentConfig(mlp_sizes=(8,), core=core))
        return Learner(agent, LearnerConfig(device="cpu"), total_updates=1)

    compiled, eager = learner("on"), learner("off")
    assert not {"compile", "compile_chunk"} & set(compiled.metadata()["agent_config"]["core"])
    assert compiled.metadata() == eager.metadata()
    eager.load_state_dict(compiled.state_dict())  # no "checkpoint does not match" error
