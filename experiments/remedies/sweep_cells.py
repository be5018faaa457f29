"""Issue 8, the ablation's key rows for the GRU and the tanh RNN: which remedies matter more without gates?

The same budget and baseline as experiments/remedies/sweep.py (2x200, PTB, 4 epochs, SGD lr 1
for 1 epoch then x0.5 per epoch, clip 5), with ``model.cell`` swapped; each cell gets its
baseline, the combination, layer normalisation and the residual stack (8 runs). Variational
dropout alone was cut before this sweep started: in the LSTM ablation the regularisers
measured by then (dropout, variational dropout, the combination) only slowed fitting at this
budget (see README.md), and the combination row carries them.

    rnnlm-sweep --config experiments/remedies/sweep_cells.py --workdir runs/remedies_cells
    python experiments/remedies/table.py runs/remedies_cells
"""

from __future__ import annotations

import pathlib

from rnnlm_jax.sweep import import_file, product, sweep

_LSTM = import_file(pathlib.Path(__file__).resolve().parent / "sweep.py")  # budget and points

KEY_ROWS = [
    {},  # baseline
    _LSTM.AWD,  # the combination
    {"model.norm": "layer"},  # layer normalisation
    {"model.residual": True},  # residual stack
]


def get_config():
  return _LSTM.get_config()


def get_sweep():
  # cells vary slowest; within a cell the baseline and the combination come first.
  return product(sweep("model.cell", ["gru", "rnn_tanh"]), KEY_ROWS, sweep("seed", [0]))
