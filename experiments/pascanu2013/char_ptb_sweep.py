"""Pascanu, Mikolov & Bengio 2013, Table 1 (char-PTB, 1-step row): MSGD vs MSGD+C, bits/char
(issue 5, item 3).

    rnnlm-sweep --config experiments/pascanu2013/char_ptb_lr_search.py \\
        --workdir runs/pascanu2013_char_lr                  # picks LEARNING_RATE and CLIP below
    rnnlm-sweep --config experiments/pascanu2013/char_ptb_sweep.py \\
        --workdir runs/pascanu2013_char --task_index=0 --num_tasks=2 &   # one shard per core
    rnnlm-sweep --config experiments/pascanu2013/char_ptb_sweep.py \\
        --workdir runs/pascanu2013_char --task_index=1 --num_tasks=2
    rnnlm-report runs/pascanu2013_char --tables= --rows optim.clip_mode --metric bpc

2 points: MSGD (plain mini-batch SGD, no momentum) and MSGD+C (the same, the gradient rescaled
when its global norm exceeds ``CLIP``) on Mikolov's character-level PTB (``ptb_char``; 50
symbols, ``_`` between words). Published test bits/char: 1.50 (MSGD), 1.42 (MSGD+C).

Not confirmed from the paper: its model size, unroll length, learning rate and number of
updates. Ours: a one-layer tanh RNN of 256 units over 64-d character embeddings, bptt 100,
batch 32, loss averaged per character, the learning rate of plain MSGD chosen on validation
bits/char by ``char_ptb_lr_search.py``, the threshold the median pre-clip gradient norm of that
run (Pascanu et al.'s heuristic, as for the music rows), and ``EPOCHS`` passes over the 5.0M
training characters: a CPU budget, far shorter than the paper's training.
"""

from rnnlm_jax.config_base import base_config
from rnnlm_jax.sweeps.spec import sweep

LEARNING_RATE = 0.3  # plain SGD, chosen by char_ptb_lr_search.py (valid bpc 3.31 after 400
# updates; 0.1: 3.91; 1.0 and 3.0 blew up: 14.9 and 600 bpc)
CLIP = 0.5  # MSGD+C threshold: the median pre-clip norm of that lr-0.3 MSGD run was 0.50
EPOCHS = 30  # passes over the 5.0M training characters (a CPU budget, 47,010 updates)


def get_config():
  c = base_config()
  c.data.name = "ptb_char"  # Mikolov's character-level PTB
  c.data.bptt = 100  # unroll 100 characters
  c.model.cell = "rnn_tanh"  # the paper's model: a tanh RNN
  c.model.num_layers = 1  # one recurrent layer
  c.model.hidden_size = 256  # ours (the paper's size is not confirmed)
  c.model.embed_size = 64  # character embedding width (the input weights)
  c.model.dropout = 0.0  # no dropout (none in the paper)
  c.model.init_scale = 0.1  # U[-0.1, 0.1] init
  c.optim.name = "sgd"  # MSGD: mini-batch SGD
  c.optim.momentum = 0.0  # no momentum
  c.optim.learning_rate = LEARNING_RATE  # constant, shared by MSGD and MSGD+C
  c.optim.schedule = "constant"  # no decay
  c.optim.loss_reduction = "mean"  # per-character mean
  c.optim.clip_value = CLIP  # used by MSGD+C only (clip_mode is swept)
  c.train.batch_size = 32  # sequences per update
  c.train.eval_batch_size = 32  # evaluation columns
  c.train.num_epochs = EPOCHS  # passes over the training stream
  c.train.log_every = 100  # train events: loss, pre-clip gradient norm, clip rate
  c.train.checkpoint_every_steps = 500  # resumable background runs
  c.train.progress_bar = False  # log lines only
  return c


def get_sweep():
  return sweep("optim.clip_mode", ["none", "global_norm"])  # MSGD, MSGD+C
