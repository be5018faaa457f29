"""Golden case lm_word: a 2x16 LSTM word LM on tests/golden/data/word.txt (Zaremba schedule).

Self-contained on purpose (does not read configs/tiny.py, which may change): every value that
decides the numbers is set here. data.path / data.tfds_dir come from the command line.
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.seed = 0
  c.data.name = "text_file"
  c.data.level = "word"
  c.data.split = (0.8, 0.1, 0.1)
  c.data.bptt = 10
  c.model.cell = "lstm"
  c.model.num_layers = 2
  c.model.hidden_size = 16
  c.model.embed_size = 16
  c.model.dropout = 0.1
  c.model.init = "uniform"
  c.model.init_scale = 0.1
  c.optim.name = "sgd"
  c.optim.learning_rate = 1.0
  c.optim.schedule = "zaremba"
  c.optim.lr_hold_epochs = 1
  c.optim.lr_decay = 0.5
  c.optim.loss_reduction = "sum_time"
  c.optim.clip_mode = "global_norm"
  c.optim.clip_value = 5.0
  c.train.batch_size = 4
  c.train.eval_batch_size = 2
  c.train.num_devices = 1
  c.train.num_epochs = 2
  c.train.max_steps = 0
  c.train.log_every = 5
  c.train.checkpoint_every_steps = 10
  c.train.progress_bar = False
  return c
