#!/usr/bin/env bash
# The quality runs of experiments/min_cells/README.md: 1-layer LMs at equal parameter count
# (hidden sizes from param_counts.py), 3 seeds per cell, a short budget (STEPS updates), on
# tiny-shakespeare characters and PTB words. Workdirs outside the checkout; re-running resumes
# or skips finished runs. Run from the repository root:
#   nice -n 10 taskset -c 0 bash experiments/min_cells/run.sh
set -euo pipefail
OUT=${OUT:-$HOME/rnnlm_runs/min_cells}
STEPS=${STEPS:-300}
SEEDS=${SEEDS:-"0 1 2"}
COMMON="--config.model.num_layers=1 --config.optim.name=adam --config.optim.schedule=constant
  --config.optim.loss_reduction=mean --config.optim.clip_mode=global_norm
  --config.optim.clip_value=5.0 --config.model.dropout=0.0 --config.train.progress_bar=False
  --config.train.max_steps=$STEPS --config.train.num_epochs=1"

source "$(dirname "$0")/../../scripts/run_once.sh"  # run NAME CONFIG FLAGS...

mkdir -p "$OUT"
for seed in $SEEDS; do
  for cell_h in gru:128 lstm:128 min_gru:425 min_lstm:414; do
    cell=${cell_h%:*} h=${cell_h#*:}
    run "char_${cell}_s${seed}" configs/shakespeare_char.py --config.seed=$seed \
      --config.model.cell=$cell --config.model.hidden_size=$h --config.model.embed_size=64 \
      --config.optim.learning_rate=2e-3 --config.train.log_every=50
  done
  for cell_h in gru:128 lstm:128 min_gru:134 min_lstm:136; do
    cell=${cell_h%:*} h=${cell_h#*:}
    run "ptb_${cell}_s${seed}" configs/ptb_small.py --config.seed=$seed \
      --config.model.cell=$cell --config.model.hidden_size=$h --config.model.embed_size=128 \
      --config.optim.learning_rate=2e-3 --config.train.eval_batch_size=10 \
      --config.train.log_every=50
  done
done
