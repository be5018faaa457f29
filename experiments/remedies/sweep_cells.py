"""Issue 8, the ablation's key rows for the GRU and the tanh RNN: which remedies matter more without gates?

The baseline and schedule of experiments/remedies/sweep.py (2x200, PTB, SGD lr 1 for 1 epoch
then x0.5 per epoch, clip 5) with ``model.cell`` swapped, at **2 epochs** (4,646 updates)
instead of 4: each cell gets its baseline and the residual stack, the one remedy that beat the
LSTM baseline clearly (4 runs). The schedule is per epoch, so a cell's valid perplexity after
its 2 epochs is comparable with the LSTM rows' valid after their second epoch (README.md).

Cut, for the CPU budget (about 6 h for the whole issue, spent mostly on the LSTM ablation):
the 4-epoch budget, and the combination and layer-norm rows (the combination cost the LSTM
16 % at 4 epochs; layer norm 6 %, at about 20 % lower throughput, the LN cells having no
hand-written backward pass).

    rnnlm-sweep --config experiments/remedies/sweep_cells.py --workdir runs/remedies_cells
    python experiments/remedies/table.py runs/remedies_cells
"""

from __future__ import annotations

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep

_LSTM = import_file(pathlib.Path(__file__).resolve().parent / "sweep.py")  # budget and points

EPOCHS = 2  # the budget of every point here, in epochs of 2,323 updates

KEY_ROWS = [
    {},  # baseline
    {"model.residual": True},  # residual stack
]


def get_config():
  c = _LSTM.get_config()
  c.train.num_epochs = EPOCHS
  return c


def get_sweep():
  # cells vary slowest; within a cell the baseline comes first.
  return product(sweep("model.cell", ["gru", "rnn_tanh"]), KEY_ROWS, sweep("seed", [0]))
