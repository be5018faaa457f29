"""A seconds-long smoke run on a 2-layer LSTM (tests, CI, trying the CLI).

    rnnlm-train --config configs/tiny.py --workdir /tmp/rnnlm_tiny
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "ptb"  # any corpus works; tests point data.name/text_file at tiny files
  c.data.bptt = 10  # short windows
  c.model.num_layers = 2  # 2 layers
  c.model.hidden_size = 32  # tiny
  c.model.embed_size = 32  # tiny
  c.optim.schedule = "zaremba"  # exercise the schedule
  c.optim.lr_hold_epochs = 1  # decay after the first epoch
  c.train.batch_size = 4  # tiny batch
  c.train.eval_batch_size = 2  # two columns at evaluation
  c.train.num_epochs = 2  # two passes
  c.train.max_steps = 40  # and at most 40 updates
  c.train.log_every = 5  # log often
  c.train.checkpoint_every_steps = 10  # checkpoint often
  c.train.progress_bar = False  # quiet
  return c
