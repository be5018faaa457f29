"""Zaremba et al. 2014, "medium" regularised LSTM on PTB: 2x650, dropout 0.5, 39 epochs.

Paper: valid 86.2 / test 82.7. lr 1 for 6 epochs then /1.2 per epoch, init U[-0.05, 0.05].

    rnnlm-train --config configs/ptb_medium.py --workdir runs/ptb_medium
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "ptb"  # Mikolov's PTB
  c.data.bptt = 35  # unroll 35
  c.model.cell = "lstm"  # LSTM
  c.model.num_layers = 2  # 2 layers
  c.model.hidden_size = 650  # 650 units
  c.model.embed_size = 650  # embedding 650
  c.model.dropout = 0.5  # dropout on non-recurrent connections
  c.model.init_scale = 0.05  # U[-0.05, 0.05]
  c.optim.learning_rate = 1.0  # lr 1
  c.optim.schedule = "zaremba"  # held, then decayed per epoch
  c.optim.lr_hold_epochs = 6  # 6 epochs at lr 1
  c.optim.lr_decay = 1 / 1.2  # then /1.2 per epoch
  c.optim.loss_reduction = "sum_time"  # summed over time
  c.optim.clip_mode = "global_norm"  # global-norm clipping
  c.optim.clip_value = 5.0  # at 5
  c.train.batch_size = 20  # batch 20
  c.train.num_epochs = 39  # 39 epochs
  return c
