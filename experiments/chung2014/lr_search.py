"""The learning-rate choice for experiments/chung2014/sweep.py: each cell on JSB Chorales at
two RMSProp rates, picked by validation NLL (never test).

    rnnlm-sweep --config experiments/chung2014/lr_search.py --workdir runs/chung2014_lr \\
        --task_index=0 --num_tasks=2 &
    rnnlm-sweep --config experiments/chung2014/lr_search.py --workdir runs/chung2014_lr \\
        --task_index=1 --num_tasks=2
    rnnlm-report runs/chung2014_lr --tables= --rows model.cell --cols optim.learning_rate \\
        --metric best_valid_loss

6 points: {tanh 100, GRU 46, LSTM 36} x learning rate {3e-3, 1e-2}, otherwise the base of
sweep.py (batch 8, clip 1, 200 epochs at most, patience 15). Chung et al. chose each model's
rate on validation from 10 log-uniform candidates; two are what our CPU budget allows.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep, zip_


def _chung_sweep():
  return import_file(pathlib.Path(__file__).resolve().parent / "sweep.py")


def get_config():
  mod = _chung_sweep()
  c = mod.get_config()
  c.data.name = "jsb_chorales"  # the data set of the paper's published numbers
  c.train.num_epochs, c.train.batch_size = mod.DATASETS["jsb_chorales"]  # as in sweep.py
  return c


def cells_x_rates(rates):
  """Every (cell, units) of sweep.py at each RMSProp rate of ``rates``."""
  cells = _chung_sweep().CELLS
  return product(
      zip_(sweep("model.cell", [c for c, _ in cells]),
           sweep("model.hidden_size", [h for _, h in cells])),
      sweep("optim.learning_rate", list(rates)),
  )


def get_sweep():
  return cells_x_rates([3e-3, 1e-2])
