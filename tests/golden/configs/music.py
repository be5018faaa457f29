"""Golden case music: a 1x8 LSTM next-frame model of 88-key piano rolls (kind=music), RMSProp.

The tiny rolls (tests/golden/data/music.json) are written by the test as a JSB-Chorales-named
pickle into a data directory passed as --config.data.dir.
"""

from rnnlm_jax.config_base import seq_config


def get_config():
  c = seq_config("music")
  c.seed = 0
  c.data.name = "jsb_chorales"
  c.data.length_pool = 2
  c.model.cell = "lstm"
  c.model.num_layers = 1
  c.model.hidden_size = 8
  c.model.dropout = 0.0
  c.model.init = "uniform"
  c.model.init_scale = 0.1
  c.model.forget_bias = 0.0
  c.model.weight_noise = 0.0
  c.optim.name = "rmsprop"
  c.optim.learning_rate = 3e-3
  c.optim.rmsprop_decay = 0.9
  c.optim.momentum = 0.0
  c.optim.weight_decay = 0.0
  c.optim.clip_mode = "global_norm"
  c.optim.clip_value = 1.0
  c.train.batch_size = 3
  c.train.eval_batch_size = 2
  c.train.num_epochs = 3
  c.train.max_steps = 0
  c.train.patience = 0
  c.train.log_every = 1
  c.train.checkpoint_every_steps = 4
  c.train.progress_bar = False
  return c
