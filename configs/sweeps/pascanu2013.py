"""Pascanu, Mikolov & Bengio 2013, the clipping study on the synthetic tasks (issue 4).

    rnnlm-sweep --config configs/sweeps/pascanu2013.py --workdir runs/pascanu2013 \\
        --task_index=0 --num_tasks=2 &      # one shard per core
    rnnlm-sweep --config configs/sweeps/pascanu2013.py --workdir runs/pascanu2013 \\
        --task_index=1 --num_tasks=2
    rnnlm-report runs/pascanu2013 --rows model.cell --cols optim.clip_mode

Their setup (paper and pascanur/trainingRNNs): 50 hidden units, batch 20, plain SGD at a
constant 0.01, rescale the gradient when its norm exceeds 1 ("SGD-C"), Omega weight 4
("SGD-CR"), 5 seeds, success = under 1 % of 10,000 test sequences wrong.

Points (200 runs, trained as 40 vmapped groups of 5 seeds):

* tanh RNN, smart-tanh init x {SGD, SGD-C, SGD-CR} x L in {50, 100, 150, 200}
  x {temporal order, addition} x 5 seeds;
* LSTM (forget-gate bias 1) and GRU, U[-0.1, 0.1] init x {SGD, SGD-C} x L in {100, 200}
  x {temporal order, addition} x 5 seeds (not in the paper: the same optimiser for comparison).

The update cap (``train.max_steps``) is ours, not the paper's (they allow 5M): it is set so
the whole study fits in about 4 hours of this project's 2-core CPU (see
experiments/pascanu2013/README.md for the measured cost).
"""

from rnnlm_jax.config_base import synthetic_config
from rnnlm_jax.sweeps.spec import product, sweep, zip_

SEEDS = [0, 1, 2, 3, 4]
TASKS = ["temporal_order", "addition"]


def get_config():
  c = synthetic_config()
  c.model.cell = "rnn_tanh"  # the paper's model (LSTM/GRU points override it)
  c.model.hidden_size = 50  # Pascanu et al.: 50 hidden units
  c.model.init = "smart_tanh"  # sparse W_hh with spectral radius 0.95 (their best tanh init)
  c.optim.name = "sgd"  # plain SGD, no momentum
  c.optim.learning_rate = 0.01  # their constant learning rate
  c.optim.clip_value = 1.0  # their clipping threshold
  c.train.batch_size = 20  # their batch size
  c.train.max_steps = 20000  # our update cap for every run (the paper: up to 5M)
  c.train.eval_every = 2000  # test-set checks (success is detected at these steps)
  c.train.log_every = 200  # train events: mean loss, grad-norm p50/p90/max, clip rate
  c.train.checkpoint_every_steps = 2000  # resume points
  c.train.progress_bar = False  # many runs: log lines only
  return c


def get_sweep():
  tanh = product(
      sweep("synthetic.problem", TASKS),
      sweep("synthetic.length", [50, 100, 150, 200]),
      zip_(sweep("optim.clip_mode", ["none", "global_norm", "global_norm"]),  # SGD, -C, -CR
           sweep("optim.omega_weight", [0.0, 0.0, 4.0])),
      sweep("seed", SEEDS),
  )
  gated = product(
      sweep("synthetic.problem", TASKS),
      zip_(sweep("model.cell", ["lstm", "gru"]),
           sweep("model.init", ["uniform", "uniform"]),  # U[-0.1, 0.1] (init_scale 0.1)
           sweep("model.forget_bias", [1.0, 0.0])),  # LSTM forget-gate bias 1 (Gers et al.)
      sweep("synthetic.length", [100, 200]),
      sweep("optim.clip_mode", ["none", "global_norm"]),  # SGD, SGD-C
      sweep("seed", SEEDS),
  )
  return tanh + gated
