"""The learning rate (and clipping threshold) of experiments/pascanu2013/music_sweep.py: plain
MSGD (no clipping) on JSB Chorales, which is not one of the paper's Table 1 data sets, at three
rates; the best validation NLL wins, and its run's pre-clip gradient norms give the threshold.

    rnnlm-sweep --config experiments/pascanu2013/music_lr_search.py \\
        --workdir runs/pascanu2013_music_lr
    rnnlm-report runs/pascanu2013_music_lr --tables= --rows optim.learning_rate \\
        --metric best_valid_loss
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, sweep


def _music_sweep():
  return import_file(pathlib.Path(__file__).resolve().parent / "music_sweep.py")


def get_config():
  c = _music_sweep().get_config()
  c.data.name = "jsb_chorales"  # a fourth data set, kept out of the table
  c.train.num_epochs = 200  # cap (early stopping on validation usually ends it sooner)
  c.train.batch_size = 8  # as the table's runs (batch 8; 4 on Piano-midi.de)
  c.optim.clip_mode = "none"  # MSGD
  return c


def get_sweep():
  return sweep("optim.learning_rate", [0.1, 0.3, 1.0])
