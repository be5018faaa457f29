"""Pascanu, Mikolov & Bengio 2013, Table 1 (music rows): MSGD vs MSGD+C on Piano-midi.de,
Nottingham and MuseData (issue 5, item 3).

    rnnlm-sweep --config experiments/pascanu2013/music_sweep.py --workdir runs/pascanu2013_music \\
        --task_index=0 --num_tasks=2 &      # one shard per core
    rnnlm-sweep --config experiments/pascanu2013/music_sweep.py --workdir runs/pascanu2013_music \\
        --task_index=1 --num_tasks=2
    rnnlm-report runs/pascanu2013_music --tables= --rows optim.clip_mode --cols data.name \\
        --metric test_loss

18 points: {MSGD (plain mini-batch SGD), MSGD+C (the same, gradient rescaled when its global
norm exceeds ``CLIP``)} x {Piano-midi.de, Nottingham, MuseData} x 3 seeds (issue 20: rows that
cost under a CPU-hour get at least 3 seeds; the first run of this study had one). Every
evaluation logs the test NLL both ways: pooled over all frames (``loss``) and per sequence
then averaged (``nll_per_sequence``), since which one the paper used is not confirmed. The model is a one-layer
tanh RNN of 100 units with sigmoid outputs over the 88 keys (the tanh row of
experiments/chung2014; the paper's music model size is not confirmed). Both methods share every
other setting, as in the paper ("hyper-parameters fixed across the runs except the
regularisation factor and the clipping threshold"): the learning rate is the best JSB
validation NLL of plain MSGD in ``music_lr_search.py`` (not a data set of the table, so no
table data is used to choose it); the threshold is about the median pre-clip gradient norm of
that MSGD run (Pascanu et al.'s heuristic: a threshold of the order of the average norm).
Epoch caps and early stopping (patience, on validation NLL) are ours.
See the "Music (Table 1)" section of experiments/pascanu2013/README.md.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep, zip_

LEARNING_RATE = 0.1  # plain SGD, chosen by music_lr_search.py (JSB validation, MSGD)
CLIP = 2.0  # MSGD+C threshold: the median pre-clip norm of that JSB MSGD run was 2.03
# data set -> (epoch cap, sequences per update), as experiments/chung2014/sweep.py.
DATASETS = {
    "piano_midi": (120, 4),
    "nottingham": (60, 8),
    "musedata": (40, 8),
}


def _music_config():
  mod = import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "music.py")
  return mod.get_config()


def get_config():
  c = _music_config()
  c.model.cell = "rnn_tanh"  # the paper's model: a tanh RNN
  c.model.hidden_size = 100  # ours (the paper's size is not confirmed): Chung et al.'s tanh size
  c.optim.name = "sgd"  # MSGD: mini-batch SGD
  c.optim.momentum = 0.0  # no momentum
  c.optim.learning_rate = LEARNING_RATE  # constant, shared by MSGD and MSGD+C
  c.optim.clip_value = CLIP  # used by MSGD+C only (clip_mode is swept)
  c.train.patience = 15  # stop after 15 epochs without a better validation NLL
  c.train.eval_batch_size = 32  # valid/test sequences per batch (sorted by length)
  c.train.log_every = 50  # train events: loss, pre-clip gradient norm, clip rate
  return c


def get_sweep():
  return product(
      zip_(sweep("data.name", list(DATASETS)),
           sweep("train.num_epochs", [e for e, _ in DATASETS.values()]),
           sweep("train.batch_size", [b for _, b in DATASETS.values()])),
      sweep("optim.clip_mode", ["none", "global_norm"]),  # MSGD, MSGD+C
      sweep("seed", [0, 1, 2]),
  )
