#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA device (CI has none):
#   1. the learner, cell, agent and compiled-unroll tests there (their CUDA cases run instead of skipping);
#   2. learner updates/s on the GPU and on that machine's CPU, eager cores (benchmarks/learner_speed.py);
#   3. every memory cell against cuDNN's fused LSTM (benchmarks/cells.py --device cuda);
#   4. issue 13, the compiled unroll (memory_cells/compiled.py) at T=80, B=256, H=256: lstm/ur eager and
#      compiled beside cuDNN's LSTM (goal: within 2x), and the GPU learner's UR update eager and compiled
#      (goal: 2x the 19.6 updates/s of docs/bench_learner.md); each compile's seconds are printed apart;
#   5. the synthetic copy/adding grid on the GPU (benchmarks/synthetic.py), for what is left
#      of DEADLINE_S; unfinished runs are simply absent (the grid resumes where it stopped).
# Each step's output goes to OUT_DIR (machine.txt, tests.txt, learner.txt, cells.txt, compiled_cells.txt,
# compiled_learner.txt, synthetic.txt, synthetic.tar.gz with one JSON per finished run); a failing step
# does not stop the later ones.
#
#   benchmarks/gpu_checks.sh OUT_DIR [DEADLINE_S] [SYNTHETIC FLAGS...]
#   benchmarks/gpu_checks.sh /tmp/gpu 480 --seeds 0 1 2 --jobs 12
set -u
out=${1:?usage: gpu_checks.sh OUT_DIR [DEADLINE_S] [SYNTHETIC FLAGS...]}
deadline=${2:-480}
shift $(($# < 2 ? $# : 2))
mkdir -p "$out"
export PYTHONUNBUFFERED=1
start=$SECONDS

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name())"
  echo "cpus: $(nproc)"
} 2>&1 | tee "$out/machine.txt"

# The CUDA cases of the learner and agent tests now go through the compiled unroll (agent.core.compile: auto).
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_learner.py tests/test_cells.py tests/test_agent.py \
  tests/test_vtrace.py tests/test_compiled_unroll.py 2>&1 | tee "$out/tests.txt"

# --compile off: the eager figures, comparable with those measured before the compiled path existed.
timeout 120 python3 -m benchmarks.learner_speed --repeats 3 --updates 5 --compile off 2>&1 | tee "$out/learner.txt"

timeout 60 python3 -m benchmarks.cells --device cuda --repeats 5 2>&1 | tee "$out/cells.txt"

timeout 300 python3 -m benchmarks.cells --device cuda --batch 256 --lengths 80 --variants lstm/standard lstm/ur \
  --compiled lstm/ur --repeats 5 2>&1 | tee "$out/compiled_cells.txt"
timeout 300 python3 -m benchmarks.learner_speed --devices cuda --gates ur --shapes 80x256 --compile off on \
  --repeats 3 --updates 5 2>&1 | tee "$out/compiled_learner.txt"

left=$((deadline - (SECONDS - start)))
if ((left > 30)); then
  grid=$(mktemp -d)
  # SIGINT first so the pool's workers stop with their parent; each finished run is already on disk.
  timeout -s INT -k 10 "$left" python3 -m benchmarks.synthetic --device cuda --out "$grid" "$@" 2>&1 |
    tee "$out/synthetic.txt"
  tar -czf "$out/synthetic.tar.gz" -C "$grid" .
fi
echo "gpu_checks: done in $((SECONDS - start)) s"
