#!/usr/bin/env bash
# The runs of experiments/recurrent_bn/README.md: recurrent batch normalisation (model.norm=batch,
# Cooijmans et al. 2016) against the plain and the layer-normalised cells, LSTM and GRU, 1 layer
# of 128 units, 3 seeds, a short budget (STEPS updates, Adam 2e-3: the setup of
# experiments/min_cells), on tiny-shakespeare characters and PTB words. Workdirs outside the
# checkout; re-running resumes or skips finished runs. Run from the repository root:
#   nice -n 10 taskset -c 0 bash experiments/recurrent_bn/run.sh
set -euo pipefail
OUT=${OUT:-$HOME/rnnlm_runs/recurrent_bn}
STEPS=${STEPS:-300}
SEEDS=${SEEDS:-"0 1 2"}
COMMON="--config.model.num_layers=1 --config.model.hidden_size=128 --config.optim.name=adam
  --config.optim.schedule=constant --config.optim.loss_reduction=mean
  --config.optim.clip_mode=global_norm --config.optim.clip_value=5.0 --config.model.dropout=0.0
  --config.optim.learning_rate=2e-3 --config.train.progress_bar=False
  --config.train.max_steps=$STEPS --config.train.num_epochs=1 --config.train.log_every=50"

source "$(dirname "$0")/../../scripts/run_once.sh"  # run NAME CONFIG FLAGS...

mkdir -p "$OUT"
for seed in $SEEDS; do
  for cell in lstm gru; do
    for norm in none layer batch; do
      run "char_${cell}_${norm}_s${seed}" configs/shakespeare_char.py --config.seed=$seed \
        --config.model.cell=$cell --config.model.norm=$norm --config.model.embed_size=64
      run "ptb_${cell}_${norm}_s${seed}" configs/ptb_small.py --config.seed=$seed \
        --config.model.cell=$cell --config.model.norm=$norm --config.model.embed_size=128 \
        --config.train.eval_batch_size=10
    done
  done
done
