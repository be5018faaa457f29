"""pytorch/examples word_language_model on PTB: 2x200 LSTM, lr 20 /4 on plateau, clip 0.25.

Its README (older versions): 6 epochs -> test 117.61; with --tied 110.44; 40 epochs tied 87.17.
Per-token mean loss, bptt 35, dropout 0.2, batch 20, init U[-0.1, 0.1].

    rnnlm-train --config configs/ptb_torch_example.py --workdir runs/ptb_torch
    rnnlm-train --config configs/ptb_torch_example.py --config.model.tie_embeddings=True \
        --workdir runs/ptb_torch_tied
"""

from rnnlm_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.name = "ptb"  # Mikolov's PTB
  c.data.bptt = 35  # --bptt 35
  c.model.cell = "lstm"  # --model LSTM
  c.model.num_layers = 2  # --nlayers 2
  c.model.hidden_size = 200  # --nhid 200
  c.model.embed_size = 200  # --emsize 200
  c.model.dropout = 0.2  # --dropout 0.2
  c.model.init_scale = 0.1  # encoder/decoder U[-0.1, 0.1]
  c.model.tie_embeddings = False  # --tied
  c.optim.name = "sgd"  # plain SGD (manual update in the example)
  c.optim.learning_rate = 20.0  # --lr 20
  c.optim.schedule = "plateau"  # lr /= 4 when valid does not improve
  c.optim.plateau_factor = 4.0  # divide by 4
  c.optim.loss_reduction = "mean"  # CrossEntropyLoss mean over tokens
  c.optim.clip_mode = "global_norm"  # clip_grad_norm_
  c.optim.clip_value = 0.25  # --clip 0.25
  c.train.batch_size = 20  # --batch_size 20
  c.train.eval_batch_size = 10  # eval_batch_size = 10 in main.py
  c.train.num_epochs = 6  # 6 epochs (README rows: 6 and 40)
  return c
