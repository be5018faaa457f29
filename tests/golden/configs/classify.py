"""Golden case classify: a 1-layer BiGRU text classifier (kind=classify, attention pooling).

The tiny SMS-spam-format file (tests/golden/data/sms.txt) is written by the test as
<data.dir>/sms_spam/SMSSpamCollection; --config.data.dir points there.
"""

from rnnlm_jax.config_base import seq_config


def get_config():
  c = seq_config("classify")
  c.seed = 0
  c.data.name = "sms_spam"
  c.data.lowercase = True
  c.data.min_count = 1
  c.data.max_length = 0
  c.data.buckets = (16,)  # one padded length: one compiled shape
  c.model.cell = "gru"
  c.model.num_layers = 1
  c.model.hidden_size = 8
  c.model.bidirectional = True
  c.model.pooling = "attention"
  c.model.attention_size = 4
  c.model.head_hidden = 6
  c.model.embed_size = 6
  c.model.embeddings = ""
  c.model.embeddings_trainable = True
  c.model.embeddings_backoff = False
  c.model.embed_init_std = 0.1
  c.model.input_dropout = 0.1
  c.model.word_dropout = 0.1
  c.model.dropout = 0.2
  c.model.init = "uniform"
  c.model.init_scale = 0.1
  c.model.forget_bias = 1.0
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-2
  c.optim.weight_decay = 1e-4
  c.optim.clip_mode = "global_norm"
  c.optim.clip_value = 5.0
  c.train.batch_size = 8
  c.train.eval_batch_size = 16
  c.train.num_epochs = 2
  c.train.max_steps = 0
  c.train.patience = 0
  c.train.select_metric = "accuracy"
  c.train.log_every = 2
  c.train.checkpoint_every_steps = 5
  c.train.progress_bar = False
  return c
