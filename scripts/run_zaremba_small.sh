#!/usr/bin/env bash
# Zaremba et al. 2014 small LSTM on PTB, seeds 0 then 1 (each resumable: re-run this script).
# Logs: runs/zaremba_small_seed{0,1}.log; results in the workdirs' metrics.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
for seed in 0 1; do
  wd=runs/zaremba_small_seed$seed
  /usr/bin/time -v rnnlm-train --config configs/ptb_small.py --workdir "$wd" \
      --config.seed=$seed --config.train.progress_bar=False >> "$wd.log" 2>&1
done
