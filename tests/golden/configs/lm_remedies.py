"""Golden case lm_remedies: the word LM with every remedy of rnnlm_jax/remedies.py on.

Layer-normalised cells, residual layers, locked dropout, embedding dropout, weight drop,
attention over the last 3 states, the auxiliary 2-ahead head, AR/TAR and NT-ASGD.
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.seed = 2
  c.data.name = "text_file"
  c.data.level = "word"
  c.data.split = (0.8, 0.1, 0.1)
  c.data.bptt = 8
  c.model.cell = "lstm"
  c.model.num_layers = 2
  c.model.hidden_size = 16
  c.model.embed_size = 8
  c.model.dropout = 0.2
  c.model.init = "uniform"
  c.model.init_scale = 0.1
  c.model.norm = "layer"
  c.model.residual = True
  c.model.locked_dropout = True
  c.model.embed_dropout = 0.1
  c.model.weight_drop = 0.2
  c.model.attention_window = 3
  c.model.aux_weight = 0.2
  c.optim.name = "ntasgd"
  c.optim.learning_rate = 4.0  # high: valid loss rises at epoch 3 and NT-ASGD starts averaging
  c.optim.schedule = "constant"
  c.optim.nonmono = 1
  c.optim.loss_reduction = "sum_time"
  c.optim.clip_mode = "global_norm"
  c.optim.clip_value = 5.0
  c.optim.ar = 1.0
  c.optim.tar = 1.0
  c.train.batch_size = 8
  c.train.eval_batch_size = 2
  c.train.num_devices = 1
  c.train.num_epochs = 4
  c.train.max_steps = 0
  c.train.log_every = 4
  c.train.checkpoint_every_steps = 7
  c.train.progress_bar = False
  return c
