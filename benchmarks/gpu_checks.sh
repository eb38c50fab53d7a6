#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA device (CI has none), in order of what is
# owed, so that a session's one call (at most 10 minutes; DEADLINE_S defaults to 540 s) gets the
# most important figures first:
#   1. issue 13, the compiled unroll (memory_cells/compiled.py) at T=80, B=256, H=256: lstm/ur eager and
#      compiled beside cuDNN's LSTM (goal: within 2x), then the GPU learner's UR update eager and compiled
#      (goal: 2x the 19.6 updates/s of docs/bench_learner.md); each compile's seconds are printed apart;
#      then copy-500 at the paper's sizes, seconds per step eager and compiled in chunks of 25 steps
#      (goal: 10x faster than eager's ~0.3 s; the table's s/step is the median after 2 warm-up steps);
#   2. the learner, cell, agent and compiled-unroll tests there (their CUDA cases run instead of skipping);
#   3. learner updates/s on the GPU and on that machine's CPU, eager cores (benchmarks/learner_speed.py);
#   4. every memory cell against cuDNN's fused LSTM (benchmarks/cells.py --device cuda);
#   5. the synthetic copy/adding grid on the GPU (benchmarks/synthetic.py), for what is left
#      of DEADLINE_S; unfinished runs are simply absent (the grid resumes where it stopped).
# Each step's output goes to OUT_DIR (machine.txt, compiled_cells.txt, compiled_learner.txt,
# copy500_eager.txt and copy500_compiled.txt with each run's per-step log beside them (.csv), tests.txt,
# learner.txt, cells.txt, synthetic.txt, synthetic.tar.gz with one JSON per finished run). Each step's
# timeout is cut to what is left of DEADLINE_S, and a failing or cut step does not stop the later ones.
#
#   benchmarks/gpu_checks.sh OUT_DIR [DEADLINE_S] [SYNTHETIC FLAGS...]
#   benchmarks/gpu_checks.sh /tmp/gpu 540 --seeds 0 1 2 --jobs 12
set -u
out=${1:?usage: gpu_checks.sh OUT_DIR [DEADLINE_S] [SYNTHETIC FLAGS...]}
deadline=${2:-540}
shift $(($# < 2 ? $# : 2))
mkdir -p "$out"
export PYTHONUNBUFFERED=1
start=$SECONDS

# step FILE SECONDS COMMAND...: run COMMAND for at most SECONDS, or what is left of the deadline if less.
step() {
  local file=$1 limit=$2 left
  shift 2
  left=$((deadline - (SECONDS - start)))
  ((left < limit)) && limit=$left
  if ((limit < 10)); then
    echo "gpu_checks: no time left for $file" | tee "$out/$file"
    return
  fi
  timeout -s INT -k 10 "$limit" "$@" 2>&1 | tee "$out/$file"
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name())"
  echo "cpus: $(nproc)"
} 2>&1 | tee "$out/machine.txt"

step compiled_cells.txt 150 python3 -m benchmarks.cells --device cuda --batch 256 --lengths 80 \
  --variants lstm/standard lstm/ur --compiled lstm/ur --repeats 5
step compiled_learner.txt 150 python3 -m benchmarks.learner_speed --devices cuda --gates ur --shapes 80x256 \
  --compile off on --repeats 3 --updates 5
# Issue 13's goal 3. Separate --out folders: --compile-chunk is not part of a run's identity, so one folder
# would resume the eager run instead of training again. The compiled run's line gives its compile seconds.
copy500=(python3 -m benchmarks.synthetic --device cuda --task copy --copy-delay 480 --hidden 256 --batch 10
  --gates ur --seeds 0 --steps 12)
copy_runs=$(mktemp -d)
step copy500_eager.txt 30 "${copy500[@]}" --out "$copy_runs/eager"
step copy500_compiled.txt 90 "${copy500[@]}" --compile-chunk 25 --out "$copy_runs/compiled"
for run in eager compiled; do # the per-step wall times, also of a run cut short by the timeout
  cp "$copy_runs/$run/copy-480/lstm-ur-s0.csv" "$out/copy500_$run.csv" 2>/dev/null
done
# The CUDA cases of the learner and agent tests go through the compiled unroll (agent.core.compile: auto).
step tests.txt 180 python3 -m pytest -q -p no:cacheprovider tests/test_learner.py tests/test_cells.py \
  tests/test_agent.py tests/test_vtrace.py tests/test_compiled_unroll.py
# --compile off: the eager figures, comparable with those measured before the compiled path existed.
step learner.txt 90 python3 -m benchmarks.learner_speed --repeats 3 --updates 5 --compile off
step cells.txt 60 python3 -m benchmarks.cells --device cuda --repeats 5

left=$((deadline - (SECONDS - start)))
if ((left > 30)); then
  grid=$(mktemp -d)
  # SIGINT first so the pool's workers stop with their parent; each finished run is already on disk.
  timeout -s INT -k 10 "$left" python3 -m benchmarks.synthetic --device cuda --out "$grid" "$@" 2>&1 |
    tee "$out/synthetic.txt"
  tar -czf "$out/synthetic.tar.gz" -C "$grid" .
fi
echo "gpu_checks: done in $((SECONDS - start)) s"
