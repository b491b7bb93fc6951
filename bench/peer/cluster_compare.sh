#!/usr/bin/env bash
# Data-parallel training throughput on this machine, alternating in each round:
#   PyTorch DDP (gloo, world size 2, one thread per process, batch 64 per process),
#   clusterconv train on the embedded cluster (2 workers, 2 threads, global batch 128),
#   clusterconv train engine-only (--workers 0, 2 threads, batch 128).
# ClusterConv runs real Fashion-MNIST steps with the default statistics (--stats-every 10) and
# reports train-time samples/s from summary.json, and also samples/s by the median step (as DDP's
# number is). Usage: bench/peer/cluster_compare.sh [ROUNDS] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rounds="${1:-3}"
steps="${2:-300}"
"$root/scripts/ensure-packages.sh" python3-torch libopenblas0-pthread dataset-fashion-mnist
"$root/clusterconv" --help >/dev/null
work="$(mktemp -d /tmp/clusterconv-cluster-compare.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# As many epochs (469 steps of 128 out of 60,000 samples) as STEPS needs; evaluation is outside the train clock.
epochs=$(( (steps + 468) / 469 ))
train() { "$root/clusterconv" train --batch-size 128 --threads 2 --max-steps "$steps" --epochs "$epochs" --checkpoint-every 0 --out "$work/$1" "${@:2}" --json 2>/dev/null; }
for round in $(seq "$rounds"); do
  ddp=$(cd "$root/bench/peer" && OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 torch_ddp.py --world 2 --batch-size 64)
  cluster=$(train "cluster-$round" --workers 2)
  engine=$(train "engine-$round" --workers 0)
  /usr/bin/python3 - "$ddp" "$cluster" "$engine" "$round" <<'PY'
import json, sys
d, c, e = (json.loads(a) for a in sys.argv[1:4])
ds, cs, es = d["samples_per_second"], c["samples_per_second"], e["samples_per_second"]
cm, em = c["median_step_samples_per_second"], e["median_step_samples_per_second"]
print(f"round {sys.argv[4]}: ddp {ds:.0f} samples/s, clusterconv 2 workers {cs:.0f} ({cs / ds:.2f}x ddp), "
      f"engine-only {es:.0f} (cluster/engine {cs / es:.2f}), {c['bytes_per_step'] / 1e6:.2f} MB moved per step; "
      f"by median step (as DDP's): cluster {cm:.0f} ({cm / ds:.2f}x ddp), engine-only {em:.0f} (cluster/engine {cm / em:.2f})")
PY
done
