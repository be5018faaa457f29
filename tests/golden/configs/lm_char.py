"""Golden case lm_char: a 1x24 GRU character LM on tests/golden/data/char.txt (Adam)."""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.seed = 1
  c.data.name = "text_file"
  c.data.level = "char"
  c.data.split = (0.8, 0.1, 0.1)
  c.data.bptt = 12
  c.model.cell = "gru"
  c.model.num_layers = 1
  c.model.hidden_size = 24
  c.model.embed_size = 12
  c.model.dropout = 0.0
  c.model.init = "uniform"
  c.model.init_scale = 0.1
  c.optim.name = "adam"
  c.optim.learning_rate = 0.01
  c.optim.schedule = "constant"
  c.optim.loss_reduction = "mean"
  c.optim.clip_mode = "global_norm"
  c.optim.clip_value = 1.0
  c.train.batch_size = 4
  c.train.eval_batch_size = 4
  c.train.num_devices = 1
  c.train.num_epochs = 1
  c.train.max_steps = 25
  c.train.log_every = 5
  c.train.checkpoint_every_steps = 10
  c.train.progress_bar = False
  return c
