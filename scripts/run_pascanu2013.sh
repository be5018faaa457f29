#!/bin/bash
# The Pascanu et al. 2013 clipping study (configs/sweeps/pascanu2013.py), one shard per core.
# Resumable: re-run the same command after an interruption; finished points are skipped.
#   bash scripts/run_pascanu2013.sh [WORKDIR]   (default runs/pascanu2013)
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR="${1:-runs/pascanu2013}"
mkdir -p "$WORKDIR"
pids=()
for i in 0 1; do
  rnnlm-sweep --config configs/sweeps/pascanu2013.py --workdir "$WORKDIR" \
      --task_index=$i --num_tasks=2 >>"$WORKDIR/shard$i.log" 2>&1 &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
rnnlm-report "$WORKDIR" --tables synthetic.problem --rows model.cell,optim.clip_mode,optim.omega_weight \
    --cols synthetic.length --metric success
exit $status
