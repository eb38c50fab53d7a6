"""The supervised benchmark: task generators against the task definitions, metrics against plain loops,
and the whole pipeline (train, save, resume, figures, table) on a tiny configuration."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from benchmarks import synthetic, synthetic_run
from benchmarks import tasks_supervised as tasks
from benchmarks.plotting import markdown_table, seed_band, smooth
from memory_cells import CompiledUnroll


def test_copy_batch_layout():
    gen = torch.Generator().manual_seed(3)
    delay, n, alphabet = 7, 10, 8
    inputs, targets = tasks.copy_batch(5, delay, gen, alphabet=alphabet, num_tokens=n)
    assert inputs.shape == (2 * n + delay, 5, alphabet + 2) and targets.shape == (n, 5)
    codes = inputs.argmax(-1).numpy()
    assert np.all(inputs.sum(-1).numpy() == 1.0)
    for b in range(5):
        for t in range(2 * n + delay):
            if t < n:
                assert codes[t, b] == targets[t, b] and codes[t, b] < alphabet
            elif t < n + delay:
                assert codes[t, b] == alphabet  # blank
            else:
                assert codes[t, b] == alphabet + 1  # marker


def test_copy_loss_scores_only_the_markers():
    gen = torch.Generator().manual_seed(0)
    inputs, targets = tasks.copy_batch(4, 6, gen)
    logits = torch.zeros(inputs.shape[0], 4, 8)
    assert tasks.copy_loss(logits, targets).item() == pytest.approx(math.log(8), rel=1e-6)
    # Perfect answers at the markers, garbage before them: the loss is that of the markers alone.
    logits[:-10] = torch.randn(inputs.shape[0] - 10, 4, 8, generator=gen) * 5
    logits[-10:] = 30.0 * torch.nn.functional.one_hot(targets, 8).float()
    expected = np.mean([-np.log(1 / (1 + 7 * np.exp(-30.0)))] * 40)
    assert tasks.copy_loss(logits, targets).item() == pytest.approx(expected, abs=1e-6)


def test_adding_batch_markers_and_targets():
    gen = torch.Generator().manual_seed(1)
    length, batch = 9, 64
    inputs, targets = tasks.adding_batch(batch, length, gen)
    x = inputs.numpy().astype(np.float64)
    for b in range(batch):
        marked = [t for t in range(length) if x[t, b, 1] == 1.0]
        assert len(marked) == 2 and marked[0] < length // 2 <= marked[1]
        assert targets[b].item() == pytest.approx(x[marked[0], b, 0] + x[marked[1], b, 0], abs=1e-6)
        assert all(x[t, b, 1] == 0.0 for t in range(length) if t not in marked)


def test_adding_chance_is_the_variance_of_the_sum():
    gen = torch.Generator().manual_seed(2)
    _, targets = tasks.adding_batch(200_000, 4, gen)
    mse = tasks.adding_loss(torch.ones_like(targets), targets).item()
    assert mse == pytest.approx(tasks.adding_chance(), abs=3e-3)
    with pytest.raises(ValueError, match="length"):
        tasks.adding_batch(1, 1, gen)


def reference_steps_to_solve(losses, threshold, window):
    for end in range(window, len(losses) + 1):
        if sum(losses[end - window : end]) / window < threshold:
            return end
    return None


@pytest.mark.parametrize("window", [1, 3, 7])
def test_loss_tracker_matches_a_loop(window):
    rng = np.random.default_rng(window)
    losses = np.concatenate([2 + rng.random(40), rng.random(30) * 0.1])
    for threshold in (0.05, 0.2, 1.0, 5.0, -1.0):
        tracker = synthetic_run.LossTracker(threshold, window)
        for loss in losses:
            tracker.add(float(loss))
        assert tracker.solved_at == reference_steps_to_solve(list(losses), threshold, window)
        assert tracker.mean() == pytest.approx(np.mean(losses[-window:]), rel=1e-12)
        assert len(tracker.recent) == window  # O(window) memory, not O(steps)


def test_smooth_and_seed_band_match_loops():
    y = np.array([1.0, 3.0, 2.0, 6.0, 0.0, 4.0])
    expected = [np.mean(y[max(0, i - 2) : i + 1]) for i in range(len(y))]
    np.testing.assert_allclose(smooth(y, 3), expected)
    curves = [(np.array([0.0, 10.0]), np.array([0.0, 10.0])), (np.array([0.0, 5.0, 10.0]), np.array([2.0, 2.0, 2.0]))]
    x, median, low, high = seed_band(curves, points=3)
    np.testing.assert_allclose(x, [0, 5, 10])
    np.testing.assert_allclose(low, [0, 2, 2])
    np.testing.assert_allclose(high, [2, 5, 10])
    np.testing.assert_allclose(median, [1, 3.5, 6])
    # A shorter seed (a run stopped early) only counts where it exists.
    x, median, low, high = seed_band(
        [(np.array([0.0, 10.0]), np.array([0.0, 10.0])), (np.array([0.0, 5.0]), np.ones(2))], 3
    )
    np.testing.assert_allclose(median, [0.5, 3, 10])
    np.testing.assert_allclose(low, [0, 1, 10])
    assert markdown_table(["a", "b"], [[1, None], [0.123456, "x"]]).splitlines()[2:] == ["| 1 | – |", "| 0.1235 | x |"]


def test_model_shapes_and_gates():
    spec = synthetic_run.RunSpec(task="copy", length=3, cell="lstm", gate="ur", seed=0, hidden_size=8, batch_size=2)
    model = synthetic_run.build_model(spec)
    inputs, _ = synthetic_run.make_batch(spec, torch.Generator().manual_seed(0))
    outputs, gates = model(inputs, collect_gates=True)
    assert outputs.shape == (23, 2, 8) and gates["g"].shape == (23, 2, 8) and "r" in gates
    assert synthetic_run.gate_options(spec) == {}
    assert synthetic_run.gate_options(synthetic_run.RunSpec("adding", 50, "lstm", "chrono", 0)) == {"t_max": 50.0}
    assert synthetic_run.gate_options(synthetic_run.RunSpec("copy", 480, "lstm", "chrono", 0)) == {"t_max": 500.0}
    for task, length in (("copy", 5), ("adding", 7)):
        batch = tasks.make_batch(task, 3, length, torch.Generator().manual_seed(0))
        assert batch.inputs.shape == (tasks.sequence_length(task, length), 3, tasks.io_sizes(task)[0])


@pytest.mark.slow
def test_tiny_grid_trains_saves_resumes_and_reports(tmp_path, capsys):
    argv = ["--task", "copy", "adding", "--copy-delay", "2", "--adding-length", "6", "--gates", "standard", "ur",
            "--seeds", "0", "--steps", "60", "--hidden", "8", "--batch", "4", "--out", str(tmp_path)]  # fmt: skip
    assert synthetic.main(argv) == 0
    runs = sorted(tmp_path.glob("*/*.json"))
    assert [p.parent.name + "/" + p.name for p in runs] == [
        "adding-6/lstm-standard-s0.json", "adding-6/lstm-ur-s0.json",
        "copy-2/lstm-standard-s0.json", "copy-2/lstm-ur-s0.json",
    ]  # fmt: skip
    result = synthetic.load_result(runs[1])
    assert "losses" not in json.loads(runs[1].read_text())  # the log holds them, the summary does not
    assert len(result["losses"]) == 60 and 0 < len(result["g"]) <= synthetic_run.GATE_SAMPLES
    assert result["median_step_s"] > 0 and result["peak_rss_mb"] > 0
    assert result["final_loss"] == pytest.approx(np.mean(result["losses"][-50:]), rel=1e-5)
    assert all(0.0 <= g <= 1.0 for g in result["g"]) and 0.0 <= result["binary_frac"] <= 1.0
    assert 0.0 <= result["binary_frac_init"] <= 1.0
    for task in ("copy-2", "adding-6"):
        assert (tmp_path / task / "curves.png").stat().st_size > 0
        assert (tmp_path / task / "gates.png").stat().st_size > 0
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == 2 + 4 and "lstm/ur" in table and "| 60 |" in table
    # Resume: nothing is retrained (the saved files are untouched).
    stamps = [p.stat().st_mtime_ns for p in runs]
    capsys.readouterr()
    assert synthetic.main(argv) == 0
    assert "4 of 4 runs already done; running 0" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in runs] == stamps


def log_losses(path):
    return [loss for _, loss, _ in synthetic_run.read_log(path)]


def tiny_spec(steps, hidden=8):
    return synthetic_run.RunSpec("copy", 2, "lstm", "ur", 0, hidden_size=hidden, batch_size=4, steps=steps)


def interrupt_training_step(monkeypatch, call: int):
    """Make the ``call``-th training step of this test raise KeyboardInterrupt (a stop, as Ctrl-C or a
    timeout's SIGINT); return the real step function."""
    real_step, calls = synthetic_run.train_step, []

    def stop(*args):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(synthetic_run, "train_step", stop)
    return real_step


def test_a_stopped_run_keeps_its_log_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    whole = synthetic_run.train_one(tiny_spec(30), tmp_path / "whole", checkpoint_every=10)
    expected = log_losses(synthetic_run.run_path(tmp_path / "whole", tiny_spec(30)).with_suffix(".csv"))
    assert len(expected) == 30 and len(set(expected)) > 1
    real_step = interrupt_training_step(monkeypatch, 26)
    with pytest.raises(KeyboardInterrupt):
        synthetic_run.train_one(tiny_spec(30), tmp_path / "cut", checkpoint_every=10)
    log = synthetic_run.run_path(tmp_path / "cut", tiny_spec(30)).with_suffix(".csv")
    assert log_losses(log) == expected[:25]  # the stopped run kept every step it logged
    with log.open("a") as cut:
        cut.write("26,2.07")  # and a line cut short by a kill
    monkeypatch.setattr(synthetic_run, "train_step", real_step)
    resumed = synthetic_run.train_one(tiny_spec(30), tmp_path / "cut", checkpoint_every=10)
    assert log_losses(log) == expected  # steps 21-25 were dropped and trained again, identically
    assert [step for step, _, _ in synthetic_run.read_log(log)] == list(range(1, 31))
    for key in ("final_loss", "steps_to_solve", "binary_frac", "binary_frac_init", "g"):
        assert resumed[key] == whole[key]


def test_a_run_cut_short_stays_in_the_report_as_far_as_its_log_goes(tmp_path, monkeypatch, capsys):
    argv = ["--task", "copy", "--copy-delay", "2", "--gates", "standard", "ur", "--seeds", "0", "--steps", "30",
            "--hidden", "8", "--batch", "4", "--out", str(tmp_path)]  # fmt: skip
    interrupt_training_step(monkeypatch, 49)  # the standard run trains its 30 steps, the UR run stops in its 19th
    with pytest.raises(KeyboardInterrupt):
        synthetic.main(argv)
    log = tmp_path / "copy-2" / "lstm-ur-s0.csv"
    with log.open("a") as cut:
        cut.write("19,2.07")  # a line cut short by a kill is not read
    losses = log_losses(log)
    assert len(losses) == 18 and not (tmp_path / "copy-2" / "lstm-ur-s0.json").exists()
    capsys.readouterr()
    assert synthetic.main([*argv, "--report-only"]) == 0
    assert "1 run(s) not finished" in capsys.readouterr().out
    rows = {row[1]: row for row in synthetic.summary_rows(synthetic.load_results(tmp_path, synthetic.make_specs(
        synthetic.parse_args(argv))))}  # fmt: skip
    assert rows["lstm/standard"][2] == 30 and rows["lstm/ur"][2] == 18  # steps: trained so far
    assert rows["lstm/ur"][5] == pytest.approx(np.mean(losses), rel=1e-12)  # final loss: the trailing mean
    assert rows["lstm/ur"][3] == "0/1"  # 18 steps never fill the 50-step window that "solved" reads
    assert "| lstm/ur | 18 |" in (tmp_path / "table.md").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_run_resumes_from_its_checkpoint(tmp_path):
    """The checkpoint's data-stream state is a CPU tensor, whatever the run's device (a GPU run once failed to
    resume: "RNG state must be a torch.ByteTensor")."""
    spec = dataclasses.replace(tiny_spec(6), device="cuda")
    synthetic_run.train_one(dataclasses.replace(spec, steps=3), tmp_path / "cut", checkpoint_every=3)
    resumed = synthetic_run.train_one(spec, tmp_path / "cut", checkpoint_every=3)
    whole = synthetic_run.train_one(spec, tmp_path / "whole", checkpoint_every=3)
    path = synthetic_run.run_path(tmp_path / "cut", spec).with_suffix(".csv")
    # Close, not bit for bit: cuBLAS may pick other kernels in another process state.
    np.testing.assert_allclose(
        log_losses(path), log_losses(synthetic_run.run_path(tmp_path / "whole", spec).with_suffix(".csv")), rtol=1e-5
    )
    assert len(log_losses(path)) == 6 and resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-5)


def test_a_finished_run_continues_to_more_steps(tmp_path):
    synthetic_run.train_one(tiny_spec(20), tmp_path / "short", checkpoint_every=7)
    longer = synthetic_run.train_one(tiny_spec(35), tmp_path / "short", checkpoint_every=7)
    whole = synthetic_run.train_one(tiny_spec(35), tmp_path / "whole", checkpoint_every=7)
    paths = [synthetic_run.run_path(tmp_path / d, tiny_spec(35)).with_suffix(".csv") for d in ("short", "whole")]
    assert log_losses(paths[0]) == log_losses(paths[1]) and len(log_losses(paths[0])) == 35
    assert longer["final_loss"] == whole["final_loss"] and longer["g"] == whole["g"]
    with pytest.raises(ValueError, match="another run"):  # a checkpoint of other sizes is never mixed in
        synthetic_run.train_one(tiny_spec(40, hidden=6), tmp_path / "short")
    with pytest.raises(ValueError, match="another run"):  # nor cut back to fewer steps
        synthetic_run.train_one(tiny_spec(10), tmp_path / "short")


def test_compiled_chunks_give_the_eager_losses_and_a_run_switches_between_them(tmp_path, monkeypatch):
    """``compiled`` is a speed option: the same losses (float32 rounding apart), and no part of the run's
    identity, so a run trained compiled continues eager from its checkpoint."""
    eager = synthetic_run.train_one(tiny_spec(6), tmp_path / "eager", checkpoint_every=3)
    made = []

    def traced_only(**options):  # aot_eager: the graphs and backward of inductor, without a C++ build
        made.append(CompiledUnroll(backend="aot_eager", **options))
        return made[-1]

    monkeypatch.setattr(synthetic_run, "CompiledUnroll", traced_only)
    compiled = synthetic_run.train_one(
        tiny_spec(3), tmp_path / "mixed", checkpoint_every=3, compiled=synthetic_run.Compiled(8)
    )
    synthetic_run.train_one(tiny_spec(6), tmp_path / "mixed", checkpoint_every=3)  # continued eager
    losses = [
        log_losses(synthetic_run.run_path(tmp_path / d, tiny_spec(6)).with_suffix(".csv")) for d in ("eager", "mixed")
    ]
    assert len(losses[1]) == 6 and len(set(losses[1])) > 1
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert eager["compile_s"] is None and compiled["compile_s"] > 0
    # copy-2 is T = 22 steps: chunks of 8, 8 and 6, two graphs for all 3 steps (the gate samples stay eager).
    assert len(made) == 1 and [key[1][0] for key in made[0].compile_seconds] == [8, 6]


def test_compile_mode_is_refused_without_chunks_in_one_line(capsys):
    with pytest.raises(SystemExit):
        synthetic.parse_args(["--compile-mode", "reduce-overhead"])
    assert "--compile-mode needs --compile-chunk" in capsys.readouterr().err
    args = synthetic.parse_args(["--compile-chunk", "25", "--compile-mode", "reduce-overhead"])
    assert (args.compile_chunk, args.compile_mode) == (25, "reduce-overhead")


def test_denormals_are_flushed_only_while_training():
    tiny = torch.tensor([1e-40])  # subnormal in float32
    with synthetic_run.flushed_denormals() as _:
        if torch.set_flush_denormal(True):  # only where the CPU supports it (x86 with SSE3)
            assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() > 0.0  # torch's default is back for everything else in the process
