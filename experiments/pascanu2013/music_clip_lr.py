"""Does clipping let MSGD use the learning rates at which plain MSGD fails? JSB Chorales,
MSGD+C (threshold ``music_sweep.CLIP``) at the two larger rates of music_lr_search.py, to set
beside that search's plain-MSGD runs (lr 1.0 blew up there).

    rnnlm-sweep --config experiments/pascanu2013/music_clip_lr.py \\
        --workdir runs/pascanu2013_music_clip_lr
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, sweep


def _lr_search():
  return import_file(pathlib.Path(__file__).resolve().parent / "music_lr_search.py")


def get_config():
  c = _lr_search().get_config()  # JSB, tanh 100, MSGD, batch 8, 200 epochs at most
  c.optim.clip_mode = "global_norm"  # MSGD+C, threshold music_sweep.CLIP (2.0)
  return c


def get_sweep():
  return sweep("optim.learning_rate", [0.3, 1.0])
