#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA device (CI has none):
#   1. the learner, cell and agent tests there (their CUDA cases run instead of skipping);
#   2. learner updates/s on the GPU and on that machine's CPU (benchmarks/learner_speed.py);
#   3. every memory cell against cuDNN's fused LSTM (benchmarks/cells.py --device cuda);
#   4. the synthetic copy/adding grid on the GPU (benchmarks/synthetic.py), for what is left
#      of DEADLINE_S; unfinished runs are simply absent (the grid resumes where it stopped).
# Each step's output goes to OUT_DIR (machine.txt, tests.txt, learner.txt, cells.txt, synthetic.txt,
# synthetic.tar.gz with one JSON per finished run); a failing step does not stop the later ones.
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

timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_learner.py tests/test_cells.py tests/test_agent.py \
  tests/test_vtrace.py 2>&1 | tee "$out/tests.txt"

timeout 120 python3 -m benchmarks.learner_speed --repeats 3 --updates 5 2>&1 | tee "$out/learner.txt"

timeout 60 python3 -m benchmarks.cells --device cuda --repeats 5 2>&1 | tee "$out/cells.txt"

left=$((deadline - (SECONDS - start)))
if ((left > 30)); then
  grid=$(mktemp -d)
  # SIGINT first so the pool's workers stop with their parent; each finished run is already on disk.
  timeout -s INT -k 10 "$left" python3 -m benchmarks.synthetic --device cuda --out "$grid" "$@" 2>&1 |
    tee "$out/synthetic.txt"
  tar -czf "$out/synthetic.tar.gz" -C "$grid" .
fi
echo "gpu_checks: done in $((SECONDS - start)) s"
