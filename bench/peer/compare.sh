#!/usr/bin/env bash
# Runs the keras-cnn training step in PyTorch and in ClusterConv on this machine, alternating,
# and prints both and their ratio. Usage: bench/peer/compare.sh [THREADS] [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-2}"
rounds="${2:-3}"
"$root/scripts/ensure-packages.sh" python3-torch libopenblas0-pthread
"$root/clusterconv" --help >/dev/null
for round in $(seq "$rounds"); do
  torch_json=$(OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" /usr/bin/python3 "$root/bench/peer/torch_keras_cnn.py" --threads "$threads")
  cc_json=$("$root/clusterconv" bench --threads "$threads" --batch-size 64 --json)
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/python3 - "$torch_json" "$cc_json" "$round" "$load" <<'PY'
import json, sys
t = json.loads(sys.argv[1]); c = json.loads(sys.argv[2])
print(f"round {sys.argv[3]} (load {sys.argv[4]}): pytorch {t['samples_per_second']:.0f} samples/s, clusterconv {c['samples_per_second']:.0f} samples/s "
      f"({c['gflops']} GFLOP/s, peak {c['peak_gflops']}), ratio {c['samples_per_second'] / t['samples_per_second']:.2f}x; "
      f"best step {t['best_step_ms']} vs {c['best_step_ms']} ms ({t['best_step_ms'] / c['best_step_ms']:.2f}x); "
      f"CPU per step {t['cpu_ms_per_step']} vs {c['cpu_ms_per_step']} ms ({t['cpu_ms_per_step'] / c['cpu_ms_per_step']:.2f}x)")
PY
done
