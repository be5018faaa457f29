"""Golden case synthetic: Pascanu et al. 2013's tanh RNN on temporal order, length 12 (SGD-C)."""

from rnnlm_jax.config_base import synthetic_config


def get_config():
  c = synthetic_config()
  c.seed = 0
  c.synthetic.problem = "temporal_order"
  c.synthetic.length = 12
  c.synthetic.test_size = 500
  c.synthetic.success_error_rate = 0.01
  c.model.cell = "rnn_tanh"
  c.model.hidden_size = 8
  c.model.init = "smart_tanh"
  c.model.init_scale = 0.1
  c.optim.name = "sgd"
  c.optim.learning_rate = 0.05
  c.optim.momentum = 0.0
  c.optim.clip_mode = "global_norm"
  c.optim.clip_value = 1.0
  c.optim.omega_weight = 2.0
  c.train.batch_size = 8
  c.train.max_steps = 40
  c.train.eval_every = 20
  c.train.eval_batch_size = 250
  c.train.log_every = 5
  c.train.checkpoint_every_steps = 20
  c.train.progress_bar = False
  return c
