"""Polyphonic music: next-frame prediction of 88-key piano rolls (rnnlm_jax/tasks/music.py).

    rnnlm-train --config configs/music.py --workdir runs/music_jsb_lstm
    rnnlm-train --config configs/music.py --workdir runs/music_nott_gru \\
        --config.data.name=nottingham --config.model.cell=gru --config.model.hidden_size=46

The default is Chung et al. 2014's LSTM on JSB Chorales (36 units, about 20k parameters;
GRU 46, tanh RNN 100 units), trained with RMSProp and the gradient norm clipped at 1. The
metric is the negative log-likelihood per time step (nats; ``loss`` / ``nll_per_step`` in
metrics.jsonl), the best-validation checkpoint scored on test. The learning rate, batch size
and epoch count are ours (chosen on validation NLL; see experiments/chung2014/README.md).
"""

from rnnlm_jax.config_base import seq_config


def get_config():
  c = seq_config("music")
  c.data.name = "jsb_chorales"  # jsb_chorales | nottingham | musedata | piano_midi
  # Training batches: shuffle, then sort each pool of this many batches by length so that a
  # batch holds similar lengths (less padding); 0 or 1 = plain shuffled batches.
  c.data.length_pool = 4

  c.model.cell = "lstm"  # rnn_tanh | rnn_relu | lstm | gru (Chung et al.: tanh, GRU, LSTM)
  c.model.num_layers = 1  # one recurrent layer (Chung et al. 2014)
  c.model.hidden_size = 36  # LSTM 36 / GRU 46 / tanh 100 units: about 20k parameters each
  c.model.dropout = 0.0  # no dropout
  c.model.init = "uniform"  # every parameter U[-init_scale, init_scale]
  c.model.init_scale = 0.1  # uniform range
  c.model.forget_bias = 0.0  # LSTM forget-gate bias offset at init
  c.model.weight_noise = 0.0  # std of Gaussian noise on the weight matrices per update (0 = off)

  c.optim.name = "rmsprop"  # Chung et al. 2014: RMSProp
  c.optim.learning_rate = 3e-3  # ours (chosen on JSB validation NLL)
  c.optim.rmsprop_decay = 0.9  # decay of the squared-gradient average
  c.optim.momentum = 0.0  # no momentum
  c.optim.clip_mode = "global_norm"  # rescale the gradient when its norm exceeds clip_value
  c.optim.clip_value = 1.0  # Chung et al. 2014 (after Pascanu et al. 2013): 1

  c.train.batch_size = 8  # sequences per update
  c.train.eval_batch_size = 64  # sequences per evaluation batch (sorted by length)
  c.train.num_epochs = 150  # passes over the training set
  c.train.patience = 20  # stop after this many epochs without a better validation NLL
  c.train.log_every = 100  # updates between train events in metrics.jsonl
  c.train.checkpoint_every_steps = 1000  # updates between checkpoints (also every epoch)
  c.train.progress_bar = False  # log lines only
  return c
