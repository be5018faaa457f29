"""Chung, Gulcehre, Cho & Bengio 2014, Table 2 (music): tanh RNN, GRU and LSTM of about 20k
parameters each on the four piano-roll data sets (issue 5, item 2).

    rnnlm-sweep --config experiments/chung2014/sweep.py --workdir runs/chung2014 \\
        --task_index=0 --num_tasks=2 &      # one shard per core
    rnnlm-sweep --config experiments/chung2014/sweep.py --workdir runs/chung2014 \\
        --task_index=1 --num_tasks=2
    rnnlm-report runs/chung2014 --tables= --rows model.cell --cols data.name \\
        --metric test_loss

12 points: {tanh 100, GRU 46, LSTM 36 units} x {JSB Chorales, Nottingham, MuseData,
Piano-midi.de}, one layer, sigmoid outputs over the 88 keys, RMSProp, gradient norm clipped
at 1 (the paper's optimiser). Each cell's learning rate is the one that gave the best JSB
validation NLL in ``experiments/chung2014/lr_search.py`` (the paper picked a rate per model
on validation too, from 10 random candidates; we tried two). Training stops after
``train.patience`` epochs without a better validation NLL, or at the per-data-set epoch cap
below (ours: it keeps the whole study within about an hour of this project's 2-core CPU);
the best-validation checkpoint is scored on test. See experiments/chung2014/README.md.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep, zip_

# (cell, units): Chung et al. 2014's sizes, about 20k parameters each in their count.
CELLS = [("rnn_tanh", 100), ("gru", 46), ("lstm", 36)]
# RMSProp learning rate per cell: the best JSB validation NLL of lr_search.py (README table).
LEARNING_RATES = {"rnn_tanh": 3e-3, "gru": 1e-2, "lstm": 1e-2}
# data set -> (epoch cap, sequences per update). Batch 8 everywhere but Piano-midi.de (87 long
# training pieces: batch 4 gives 22 updates per epoch instead of 11).
DATASETS = {
    "jsb_chorales": (200, 8),
    "nottingham": (60, 8),
    "musedata": (40, 8),
    "piano_midi": (120, 4),
}


def _music_config():
  mod = import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "music.py")
  return mod.get_config()


def get_config():
  c = _music_config()  # RMSProp, clip 1, one layer, U[-0.1, 0.1] init (configs/music.py)
  c.train.patience = 15  # stop after 15 epochs without a better validation NLL
  c.train.eval_batch_size = 32  # valid/test sequences per batch (sorted by length)
  c.train.log_every = 50  # train events: loss, gradient norm, clip rate
  return c


def study_sweep(rates: dict[str, float], *more):
  """Each cell (at its size and ``rates[cell]``) x each data set (its epoch cap and batch),
  times any further sweeps ``more`` (protocol_sweep.py adds the seeds)."""
  return product(
      zip_(sweep("model.cell", [c for c, _ in CELLS]),
           sweep("model.hidden_size", [h for _, h in CELLS]),
           sweep("optim.learning_rate", [rates[c] for c, _ in CELLS])),
      zip_(sweep("data.name", list(DATASETS)),
           sweep("train.num_epochs", [e for e, _ in DATASETS.values()]),
           sweep("train.batch_size", [b for _, b in DATASETS.values()])),
      *more,
  )


def get_sweep():
  return study_sweep(LEARNING_RATES)
