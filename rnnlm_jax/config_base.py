"""The full set of config keys with their defaults; every file in ``configs/`` starts here.

Keys (later tools sweep them by these names): ``seed``, ``data.*``, ``model.*``, ``optim.*``,
``train.*``. Override any of them on the command line: ``--config.optim.clip_value=1``.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Defaults: a 2x200 LSTM on PTB with plain SGD; the configs override what differs."""
  c = ml_collections.ConfigDict()
  c.task = "lm"  # what is trained: lm | music | classify | synthetic (rnnlm_jax/tasks/)
  c.seed = 0  # initialisation and dropout RNG seed

  c.data = ml_collections.ConfigDict()
  c.data.name = "ptb"  # ptb | ptb_char | wikitext2 | tiny_shakespeare | text_file
  c.data.dir = ""  # raw corpus directory; "" = $RNNLM_DATA_DIR, ../shared/data, else download
  c.data.tfds_dir = ""  # where TFDS writes prepared array_record files ("" = default cache)
  c.data.path = ""  # text_file only: the UTF-8 file to model
  c.data.level = "word"  # text_file only: "word" or "char" tokens
  c.data.split = (0.8, 0.1, 0.1)  # text_file only: contiguous train/valid/test ratios
  c.data.bptt = 20  # truncated-BPTT window (unroll) length, time steps

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"  # rnn_tanh | rnn_relu | lstm | gru | min_gru | min_lstm
  c.model.num_layers = 2  # stacked recurrent layers
  c.model.hidden_size = 200  # units per layer
  c.model.embed_size = 200  # token embedding width
  c.model.dropout = 0.0  # dropout on non-recurrent connections (Zaremba et al. 2014)
  c.model.init = "uniform"  # uniform | orthogonal | identity (see rnnlm_jax/cells.py)
  c.model.init_scale = 0.1  # uniform init range [-init_scale, init_scale]
  c.model.forget_bias = 0.0  # added to the LSTM forget-gate bias at init
  c.model.tie_embeddings = False  # share the softmax matrix with the embedding (E == H)
  c.model.scan_unroll = 1  # lax.scan unroll factor (speed only)
  # Backward-pass rematerialisation (rnn.Remat): none keeps every step's activations;
  # step recomputes each step; segment keeps only segment-boundary carries, O(T/S + S).
  c.model.remat = "none"  # none | step | segment
  c.model.remat_segment = 0  # remat=segment: time steps per segment (0 = about sqrt(bptt))
  c.model.remat_policy = "none"  # step only: none | dots (keep h W_hh: less recompute, more memory)
  c.model.compute_dtype = "float32"  # float32 | bfloat16 matmul inputs, recurrent ones too (f32
  # accumulation, params, carry and cell state; see rnnlm_jax/fused.py)
  c.model.vocab_chunk = 0  # softmax loss over vocabulary chunks of this size (0 = whole; memory)
  c.model.lstm_backend = "scan"  # scan | onednn (LSTM layers by oneDNN; pip install -e ".[onednn]")
  # Remedies (issue 8; rnnlm_jax/remedies.py, experiments/remedies/README.md), all off here:
  c.model.norm = "none"  # none | layer (Ba et al. 2016) | batch (Cooijmans et al. 2016; lstm, gru)
  c.model.bn_population_windows = 100  # norm=batch: training windows averaged into the
  # population statistics that evaluation and sampling use (re-estimated at every evaluation)
  c.model.residual = False  # layer output x + layer(x) (x P when widths differ; He-style)
  c.model.locked_dropout = False  # model.dropout masks fixed over a window (Gal & Ghahramani)
  c.model.embed_dropout = 0.0  # drop whole words (embedding rows) at this rate (0 = off)
  c.model.weight_drop = 0.0  # DropConnect rate on recurrent matrices W_hh (Merity et al. 2017)
  c.model.attention_window = 0  # K > 0: softmax input attends over last K states (Daniluk 2017)
  c.model.aux_weight = 0.0  # > 0: loss weight of an extra head predicting the token 2 ahead

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "sgd"  # sgd | adam | rmsprop | ntasgd (SGD + non-monotone averaging, optim.py)
  c.optim.learning_rate = 1.0  # initial learning rate
  c.optim.momentum = 0.0  # sgd only; 0 = plain SGD
  c.optim.schedule = "constant"  # constant | zaremba | plateau (see rnnlm_jax/optim.py)
  c.optim.lr_hold_epochs = 4  # zaremba: epochs at the initial rate
  c.optim.lr_decay = 0.5  # zaremba: factor per epoch after the hold
  c.optim.plateau_factor = 4.0  # plateau: divide the rate by this when valid does not improve
  c.optim.loss_reduction = "sum_time"  # sum_time (Zaremba, TF tutorial) | mean (per token)
  c.optim.clip_mode = "global_norm"  # none | global_norm | value | per_layer_norm | agc (optim.py)
  c.optim.clip_value = 5.0  # threshold: a norm (global, per layer), element value, or agc ratio
  c.optim.nonmono = 5  # ntasgd: start averaging when valid is worse than n validations ago
  c.optim.ar = 0.0  # activation regularisation weight alpha on mean(h^2) (AWD-LSTM: 2; 0 = off)
  c.optim.tar = 0.0  # temporal AR weight beta on mean((h_t - h_t-1)^2) (AWD-LSTM: 1; 0 = off)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 20  # sequences per batch (columns of the token stream)
  c.train.eval_batch_size = 1  # columns when evaluating valid/test (1 = full context)
  c.train.num_devices = 0  # data-parallel devices: 0 = all, 1 = one, n = the first n
  c.train.num_epochs = 13  # passes over the training stream
  c.train.max_steps = 0  # stop after this many updates (0 = no limit beyond num_epochs)
  c.train.not_learning_steps = 1000  # from this step on, a validation whose last train loss is
  # above the uniform predictor's (+0.1 nats) stops the run as diverged, "not learning" (0 = off)
  c.train.log_every = 100  # steps between train events in metrics.jsonl
  c.train.checkpoint_every_steps = 1000  # steps between checkpoints (also at every epoch end)
  c.train.checkpoint_keep = 2  # latest checkpoints kept (the best-valid one is kept apart)
  c.train.progress_bar = True  # tqdm progress bar on stderr
  c.train.sample_length = 0  # >0: after each validation, log a sample this long (samples.txt)
  return c


def synthetic_config() -> ml_collections.ConfigDict:
  """Defaults for the synthetic long-range tasks (Pascanu et al. 2013's setup).

  The problem and its success criterion are the ``synthetic`` sub-config
  (:mod:`rnnlm_jax.tasks.synthetic`). Configs written before it existed spelled it as a
  ``task`` sub-config (``task.name``, ``task.length``, ...); they are still read
  (:func:`rnnlm_jax.tasks.migrate_config_dict`).
  """
  c = ml_collections.ConfigDict()
  c.task = "synthetic"  # the task (rnnlm_jax/tasks/)
  c.seed = 0  # initialisation and training-data RNG seed (the test set does not depend on it)

  c.synthetic = ml_collections.ConfigDict()
  c.synthetic.problem = "temporal_order"  # see rnnlm_jax/synthetic/tasks.py: TASKS
  c.synthetic.length = 50  # the problem's length parameter L (Pascanu: minimum sequence length)
  c.synthetic.test_size = 10000  # fixed test sequences (seeded by problem and length, not `seed`)
  c.synthetic.valid_size = 0  # >0: also score this many validation sequences (another fixed set,
  # not the test's) at every test evaluation, to choose hyper-parameters without the test set
  c.synthetic.success_error_rate = 0.01  # success: fewer than 1 % of test sequences wrong

  c.model = ml_collections.ConfigDict()
  c.model.cell = "rnn_tanh"  # rnn_tanh | rnn_relu | lstm | gru | min_gru | min_lstm
  c.model.hidden_size = 50  # recurrent units (Pascanu et al. 2013: 50)
  c.model.init = "smart_tanh"  # smart_tanh | basic_tanh | sigmoid | uniform | orthogonal | identity
  c.model.init_scale = 0.1  # uniform/orthogonal/identity: U[-init_scale, init_scale] (Pascanu's
  # smart_tanh and basic_tanh inits draw from fixed normals, std 0.01 / 0.1, and ignore it)
  c.model.forget_bias = 0.0  # added to the LSTM forget-gate bias at init

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "sgd"  # sgd | adam
  c.optim.learning_rate = 0.01  # constant learning rate (Pascanu: 0.01)
  c.optim.momentum = 0.0  # sgd only
  c.optim.clip_mode = "none"  # none | global_norm | value | per_layer_norm | agc (optim.py)
  c.optim.clip_value = 1.0  # threshold: norm, element value or agc ratio (Pascanu: 1)
  c.optim.omega_weight = 0.0  # weight of Pascanu's vanishing-gradient regulariser (CR: 4)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 20  # fresh sequences per update (Pascanu: 20)
  c.train.max_steps = 20000  # update cap; training stops earlier at success
  c.train.eval_every = 1000  # steps between test-set evaluations (success is checked then)
  c.train.eval_batch_size = 1000  # test sequences per evaluation batch
  c.train.log_every = 100  # steps between train events in metrics.jsonl
  c.train.checkpoint_every_steps = 5000  # steps between checkpoints (resume points)
  c.train.checkpoint_keep = 1  # latest checkpoints kept
  c.train.progress_bar = True  # tqdm progress bar on stderr
  return c


def seq_config(task: str) -> ml_collections.ConfigDict:
  """Defaults shared by the padded-sequence tasks (:mod:`rnnlm_jax.tasks.padded`).

  ``task`` is ``music`` (polyphonic piano rolls, :mod:`rnnlm_jax.tasks.music`) or
  ``classify`` (text classification, :mod:`rnnlm_jax.tasks.classify`). Each task's config
  adds its own fields (e.g. ``model.bidirectional``).
  """
  c = ml_collections.ConfigDict()
  c.task = task  # music | classify (rnnlm_jax/tasks/)
  c.seed = 0  # initialisation, dropout and batch-order RNG seed

  c.data = ml_collections.ConfigDict()
  c.data.name = ""  # the dataset (per task: e.g. jsb_chorales, sst2)
  c.data.dir = ""  # raw data directory; "" = $RNNLM_DATA_DIR, ../shared/data, else download
  c.data.tfds_dir = ""  # where TFDS writes prepared array_record files ("" = default cache)
  c.data.cv_folds = 0  # classify: k >= 2 = k-fold cross-validation on the training split (the
  # valid split is unused; test unchanged); 0 = the data set's own train/valid split
  c.data.cv_fold = 0  # classify with cv_folds: the fold (0..k-1) that validates; the rest train

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"  # rnn_tanh | rnn_relu | lstm | gru | min_gru | min_lstm
  c.model.num_layers = 1  # stacked recurrent layers
  c.model.hidden_size = 100  # units per layer (and per direction)
  c.model.dropout = 0.0  # dropout on non-recurrent connections
  c.model.init = "uniform"  # uniform | orthogonal | identity (see rnnlm_jax/cells.py)
  c.model.init_scale = 0.1  # uniform init range [-init_scale, init_scale]
  c.model.forget_bias = 0.0  # added to the LSTM forget-gate bias at init

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"  # sgd | adam | rmsprop
  c.optim.learning_rate = 1e-3  # constant learning rate
  c.optim.momentum = 0.0  # sgd / rmsprop momentum (0 = none)
  c.optim.rmsprop_decay = 0.9  # rmsprop: decay of the squared-gradient average
  c.optim.weight_decay = 0.0  # adam: decoupled (AdamW); sgd, rmsprop: L2 gradient term; 0 = off
  c.optim.clip_mode = "global_norm"  # none | global_norm | value | per_layer_norm | agc (optim.py)
  c.optim.clip_value = 1.0  # clipping threshold (see rnnlm_jax/optim.py)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32  # sequences per update (padded to a length bucket)
  c.train.eval_batch_size = 128  # sequences per evaluation batch
  c.train.num_epochs = 10  # passes over the training set (reshuffled per epoch)
  c.train.max_steps = 0  # stop after this many updates (0 = no limit beyond num_epochs)
  c.train.not_learning_steps = 1000  # from this step on, a validation whose last train loss is
  # above the uniform predictor's (+0.1 nats) stops the run as diverged, "not learning" (0 = off)
  c.train.patience = 0  # stop after this many validations without improvement (0 = never)
  c.train.log_every = 50  # updates between train events in metrics.jsonl
  c.train.checkpoint_every_steps = 1000  # updates between checkpoints (also every validation)
  c.train.checkpoint_keep = 1  # latest checkpoints kept (the best-valid one is kept apart)
  c.train.progress_bar = True  # tqdm progress bar on stderr
  return c
