"""Zaremba et al. 2014, "large" regularised LSTM on PTB: 2x1500, dropout 0.65, 55 epochs.

Paper: valid 82.2 / test 78.4. lr 1 for 14 epochs then /1.15 per epoch, init U[-0.04, 0.04],
clip 10. Far too slow for a 2-core CPU (hours per epoch); meant for an accelerator.

    rnnlm-train --config configs/ptb_large.py --workdir runs/ptb_large
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "ptb"  # Mikolov's PTB
  c.data.bptt = 35  # unroll 35
  c.model.cell = "lstm"  # LSTM
  c.model.num_layers = 2  # 2 layers
  c.model.hidden_size = 1500  # 1500 units
  c.model.embed_size = 1500  # embedding 1500
  c.model.dropout = 0.65  # dropout on non-recurrent connections
  c.model.init_scale = 0.04  # U[-0.04, 0.04]
  c.optim.learning_rate = 1.0  # lr 1
  c.optim.schedule = "zaremba"  # held, then decayed per epoch
  c.optim.lr_hold_epochs = 14  # 14 epochs at lr 1
  c.optim.lr_decay = 1 / 1.15  # then /1.15 per epoch
  c.optim.loss_reduction = "sum_time"  # summed over time
  c.optim.clip_mode = "global_norm"  # global-norm clipping
  c.optim.clip_value = 10.0  # at 10
  c.train.batch_size = 20  # batch 20
  c.train.num_epochs = 55  # 55 epochs
  return c
