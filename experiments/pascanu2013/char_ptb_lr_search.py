"""The learning rate (and clipping threshold) of experiments/pascanu2013/char_ptb_sweep.py:
plain MSGD (no clipping) at four rates for ``STEPS`` updates; the lowest validation bits/char
wins, and that run's pre-clip gradient norms give the MSGD+C threshold.

    rnnlm-sweep --config experiments/pascanu2013/char_ptb_lr_search.py \\
        --workdir runs/pascanu2013_char_lr
    rnnlm-report runs/pascanu2013_char_lr --tables= --rows optim.learning_rate --metric bpc
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, sweep

STEPS = 400  # updates per rate (about 1.3M characters)


def _char_ptb_sweep():
  return import_file(pathlib.Path(__file__).resolve().parent / "char_ptb_sweep.py")


def get_config():
  c = _char_ptb_sweep().get_config()
  c.optim.clip_mode = "none"  # MSGD
  c.train.max_steps = STEPS  # a short probe
  return c


def get_sweep():
  return sweep("optim.learning_rate", [0.1, 0.3, 1.0, 3.0])
