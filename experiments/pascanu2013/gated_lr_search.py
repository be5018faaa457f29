"""Each gated cell's own learning rate on Pascanu et al.'s synthetic tasks (issue 20, item 3):
stage 1 of the re-done synthetic study, chosen on a validation set, not the tanh RNN's rate.

    rnnlm-sweep --config experiments/pascanu2013/gated_lr_search.py \\
        --workdir ~/rnnlm_runs/pascanu2013/gated_lr_search
    rnnlm-report ~/rnnlm_runs/pascanu2013/gated_lr_search --select valid \\
        --group model.cell,synthetic.problem,optim.clip_mode

Why: the first study trained LSTM and GRU with the tanh RNN's optimiser (plain SGD at 0.01);
their pre-clip gradient norms stayed at 0.08-0.23, clipping at 1 never fired, and every run
ended at chance (experiments/pascanu2013/README.md). That says nothing about gated cells, only
about that rate. The paper tuned nothing per setting (one rate, 0.01, for every method and
length; experiments/setups_confirmed.md, 1d), and did not run gated cells at all: choosing
each gated cell's rate is our addition, and is labelled so.

Points: LSTM (forget-gate bias 1) and GRU, U[-0.1, 0.1] init, 50 units, batch 20 (the paper's
model size and batch) x temporal order and addition at L = 50 x plain SGD ("SGD") and SGD with
the gradient rescaled to global norm 1 ("SGD-C", the paper's threshold) x learning rates 0.03,
0.1, 0.3, 1, 3 (x3 apart, from 3x the tanh RNN's 0.01 up to where plain SGD is expected to
blow up) x 2 seeds = 80 runs of at most 10,000 updates (success, < 1 % of the test set wrong,
stops a run earlier, as in the study). Each run scores a validation set of 2,000 fresh
sequences of its own (``synthetic.valid_size``; never the test set) every 2,000 updates; the
rate of a (cell, problem, optimiser) is the one with the lowest mean validation error rate of
its 2 seeds at 10,000 updates (their best up to then). Stage 2 (``gated_sweep.py``) then runs
5 seeds at the chosen rate at L = 50 and 100 with the study's update cap.
"""

import pathlib

from rnnlm_jax.sweeps.spec import import_file, product, sweep, zip_

LEARNING_RATES = [0.03, 0.1, 0.3, 1.0, 3.0]


def get_config():
  c = import_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "sweeps" /
                  "pascanu2013.py").get_config()  # the study's base: 50 units, batch 20, SGD
  c.model.init = "uniform"  # U[-init_scale, init_scale] = U[-0.1, 0.1] (gated cells)
  c.synthetic.length = 50  # the rates are chosen at the shortest length of the study
  c.synthetic.valid_size = 2000  # fresh validation sequences: the split the rate is chosen on
  c.train.max_steps = 10000  # the search's budget per run (success stops a run earlier)
  c.train.eval_every = 2000  # validation and test every 2,000 updates
  c.train.checkpoint_every_steps = 2000  # resume points
  return c


def get_sweep():
  return grid(LEARNING_RATES)


def grid(learning_rates):
  """Cell x problem x (no clipping, global norm 1) x ``learning_rates`` x 2 seeds."""
  return product(
      zip_(sweep("model.cell", ["lstm", "gru"]),
           sweep("model.forget_bias", [1.0, 0.0])),  # LSTM forget-gate bias 1 (Gers et al.)
      sweep("synthetic.problem", ["temporal_order", "addition"]),
      sweep("optim.clip_mode", ["none", "global_norm"]),  # SGD, SGD-C (threshold 1)
      sweep("optim.learning_rate", list(learning_rates)),
      sweep("seed", [0, 1]),
  )
