"""A seconds-long LM sweep (trying rnnlm-sweep, tests): 2 cells x 2 clip modes x 1 seed.

    rnnlm-sweep --config configs/sweeps/tiny_lm.py --workdir /tmp/rnnlm_sweep_tiny
    rnnlm-sweep --config configs/sweeps/tiny_lm.py --workdir /tmp/rnnlm_sweep_tiny --dry_run

Points run in ``<workdir>/cell=rnn_tanh,clip_mode=none,seed=0`` etc. The base is
``configs/tiny.py`` (a 2x32 network) on tiny-shakespeare characters, cut to a handful of
updates; the corpus comes from ``../shared/data``, ``$RNNLM_DATA_DIR`` or a download.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep


def _tiny():
  return import_file(pathlib.Path(__file__).resolve().parent.parent / "tiny.py")


def get_config():
  c = _tiny().get_config()
  c.data.name = "tiny_shakespeare"  # characters: a 65-symbol softmax keeps evaluation fast
  c.train.num_epochs = 1  # one pass at most
  c.train.max_steps = 20  # a handful of updates per point
  c.train.eval_batch_size = 20  # 20 columns at evaluation: valid/test take a second, not ten
  c.train.log_every = 5  # a train event every 5 updates
  c.train.checkpoint_every_steps = 10  # a resume point halfway
  return c


def get_sweep():
  return product(
      sweep("model.cell", ["rnn_tanh", "lstm"]),  # vanilla tanh RNN vs LSTM
      sweep("optim.clip_mode", ["none", "global_norm"]),  # no clipping vs clip at 5 (tiny.py)
      sweep("seed", [0]),  # one seed; list more to repeat every point
  )
