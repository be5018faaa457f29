"""Jozefowicz, Zaremba & Sutskever 2015: does a forget-gate bias of 1 help the LSTM? And the GRU.

PTB word level with the Zaremba et al. 2014 small setup (configs/ptb_small.py: 2x200, bptt 20,
SGD lr 1 held 4 epochs then x0.5, 13 epochs, clip 5, no dropout), changing one thing per point:

    rnnlm-sweep --config experiments/jozefowicz2015/sweep.py --workdir runs/jozefowicz2015
    rnnlm-report runs/jozefowicz2015 --rows model.cell,model.forget_bias --metric perplexity

The forget-bias-0 LSTM is configs/ptb_small.py itself, trained as experiments/zaremba2014 (same
config and seed), so it is not repeated here unless ``--config.seed`` changes; pass
``--config.train.num_epochs=N`` for a shorter budget (every point then shares it).
"""

from __future__ import annotations

import pathlib

from rnnlm_jax.sweeps.spec import import_file


def _ptb_small():
  return import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "ptb_small.py")


def get_config():
  c = _ptb_small().get_config()
  c.train.progress_bar = False  # log lines only (background runs)
  return c


def get_sweep():
  return [
      {"model.cell": "lstm", "model.forget_bias": 1.0},  # Jozefowicz et al.'s recommendation
      {"model.cell": "gru", "model.forget_bias": 0.0},  # the GRU at the same size and schedule
  ]
