"""Pascanu et al. 2013's synthetic study re-done (issue 20, item 3), stage 2: the tanh RNN's
three methods as in the paper, and the LSTM and GRU each at the optimiser and rate chosen for
it on a validation set (stages 1 and 1b), with and without clipping.

    rnnlm-sweep --config experiments/pascanu2013/gated_sweep.py \\
        --workdir ~/rnnlm_runs/pascanu2013/gated_sweep
    python scripts/tables.py pascanu2013

Points (5 seeds each, temporal order and addition, L = 50 and 100):

* tanh RNN, smart-tanh init, SGD at 0.01 (the paper's): SGD, SGD-C (global norm 1), SGD-CR
  (and Omega weight 4) = 60 runs;
* LSTM (forget bias 1) and GRU, U[-0.1, 0.1]: without clipping and with global norm 1, each
  at the optimiser and rate stages 1 and 1b chose for that cell, problem and clipping (the best
  validation error of the SGD and the Adam search together, read from
  ``records/gated_lr_search`` and ``records/gated_adam_search`` by
  :func:`rnnlm_jax.report.select.chosen`: no number copied by hand) = 80 runs.

Update cap 50,000 for every run (2.5x the first study's, 1/100 of the paper's 5M); success
(under 1 % of the 10,000 test sequences wrong, checked every 2,000 updates) stops a run, and
the table reports the update of success. The cap is what the CPU budget allows: runs that never
succeed cost ~2.2 ms (LSTM, L = 50) to ~4.4 ms (L = 100) per update on one core, about 3.5
CPU-hours in all if none of the gated runs without clipping succeed.
"""

import pathlib

from rnnlm_jax.report import select
from rnnlm_jax.sweeps.spec import import_file, product, sweep, zip_

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = [0, 1, 2, 3, 4]
PROBLEMS = ["temporal_order", "addition"]
LENGTHS = [50, 100]
GROUP = ["model.cell", "synthetic.problem", "optim.clip_mode"]


def get_config():
  c = import_file(HERE.parents[1] / "configs" / "sweeps" / "pascanu2013.py").get_config()
  c.train.max_steps = 50000  # update cap (success stops a run earlier)
  return c


def get_sweep():
  tanh = product(
      sweep("synthetic.problem", PROBLEMS),
      sweep("synthetic.length", LENGTHS),
      zip_(sweep("optim.clip_mode", ["none", "global_norm", "global_norm"]),  # SGD, -C, -CR
           sweep("optim.omega_weight", [0.0, 0.0, 4.0])),
      sweep("seed", SEEDS),
  )
  rates = select.chosen([HERE / "records" / "gated_lr_search",
                         HERE / "records" / "gated_adam_search"], GROUP,
                        config_keys=["optim.name"])
  gated = []
  for (cell, problem, clip_mode), chosen in rates.items():
    gated += product(
        zip_(sweep("model.cell", [cell]), sweep("model.init", ["uniform"]),
             sweep("model.forget_bias", [1.0 if cell == "lstm" else 0.0])),
        sweep("synthetic.problem", [problem]),
        sweep("optim.clip_mode", [clip_mode]),
        sweep("optim.name", [chosen["optim.name"]]),
        sweep("optim.learning_rate", [float(chosen["optim.learning_rate"])]),
        sweep("synthetic.length", LENGTHS),
        sweep("seed", SEEDS),
    )
  return tanh + gated
