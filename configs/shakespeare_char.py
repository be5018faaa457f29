"""Character-level LSTM on tiny-shakespeare (char-rnn style): 2x256 LSTM, Adam, bptt 100.

Reports bits per character. A short default that trains in minutes on a 2-core CPU:

    rnnlm-train --config configs/shakespeare_char.py --workdir runs/shakespeare_char
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "tiny_shakespeare"  # Karpathy's 1.1 MB corpus, contiguous 90/5/5 split
  c.data.bptt = 100  # unroll 100 characters
  c.model.cell = "lstm"  # LSTM
  c.model.num_layers = 2  # 2 layers
  c.model.hidden_size = 256  # 256 units
  c.model.embed_size = 64  # character embedding width
  c.model.dropout = 0.1  # light dropout between layers
  c.model.init_scale = 0.08  # char-rnn's U[-0.08, 0.08]
  c.optim.name = "adam"  # Adam
  c.optim.learning_rate = 2e-3  # char-rnn's default
  c.optim.schedule = "constant"  # constant rate
  c.optim.loss_reduction = "mean"  # per-character mean
  c.optim.clip_mode = "global_norm"  # clip the global norm
  c.optim.clip_value = 5.0  # at 5
  c.train.batch_size = 32  # sequences per batch
  c.train.eval_batch_size = 32  # evaluation columns
  c.train.num_epochs = 3  # 3 passes (about 930 steps)
  c.train.log_every = 50  # log every 50 steps
  c.train.checkpoint_every_steps = 200  # checkpoint every 200 steps
  return c
