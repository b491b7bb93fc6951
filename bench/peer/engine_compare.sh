#!/usr/bin/env bash
# Embedded cluster against engine-only on this machine, as paired ratios (the host's speed drifts by
# 10-20% within minutes, so only runs next to each other compare). Each round runs, in an order that
# rotates from round to round, `clusterconv train --workers W` and `--workers 0` (2 threads in all,
# the default --stats-every 10) for STEPS steps at global batch BATCH, and prints the cluster's
# samples/s over engine-only's, by train time and by the median step; the medians over rounds last.
# Usage: bench/peer/engine_compare.sh [ROUNDS] [STEPS] [BATCH] [WORKERS]   (defaults 6 938 64 2: one epoch)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rounds="${1:-6}"
steps="${2:-938}"
batch="${3:-64}"
workers="${4:-2}"
"$root/scripts/ensure-packages.sh" dataset-fashion-mnist
"$root/clusterconv" --help >/dev/null
work="$(mktemp -d /tmp/clusterconv-engine-compare.XXXXXX)"
trap 'rm -rf "$work"' EXIT
epochs=$(( (steps * batch + 59999) / 60000 ))
train() { "$root/clusterconv" train --batch-size "$batch" --threads 2 --max-steps "$steps" --epochs "$epochs" --checkpoint-every 0 --out "$work/$1" --workers "$2" --json 2>/dev/null; }
ratios="$work/ratios"
for round in $(seq "$rounds"); do
  if (( round % 2 )); then
    cluster=$(train "cluster-$round" "$workers"); engine=$(train "engine-$round" 0)
  else
    engine=$(train "engine-$round" 0); cluster=$(train "cluster-$round" "$workers")
  fi
  /usr/bin/python3 - "$cluster" "$engine" "$round" "$ratios" <<'PY'
import json, sys
c, e = (json.loads(a) for a in sys.argv[1:3])
train = c["samples_per_second"] / e["samples_per_second"]
median = c["median_step_samples_per_second"] / e["median_step_samples_per_second"]
print(f"round {sys.argv[3]}: cluster {c['samples_per_second']:.0f} samples/s, engine-only {e['samples_per_second']:.0f} "
      f"(cluster/engine {train:.2f}); by median step {c['median_step_samples_per_second']:.0f} and "
      f"{e['median_step_samples_per_second']:.0f} ({median:.2f})")
with open(sys.argv[4], "a") as f:
    f.write(f"{train} {median}\n")
PY
done
/usr/bin/python3 - "$ratios" <<'PY'
import statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
train, median = [r[0] for r in rows], [r[1] for r in rows]
print(f"median over {len(rows)} rounds: cluster/engine {statistics.median(train):.2f} by train time "
      f"({min(train):.2f}-{max(train):.2f}), {statistics.median(median):.2f} by the median step ({min(median):.2f}-{max(median):.2f})")
PY
