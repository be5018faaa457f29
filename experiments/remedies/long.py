"""Issue 8, the combination trained longer: PTB for 13 epochs and WikiText-2 for 6.

The combination of the ablation (``sweep.AWD``: locked + embedding + weight dropout 0.25 / 0.1 /
0.25 and AR 2 / TAR 1, AWD-LSTM's regularisers, fixed before the ablation ran) on the same
2x200 LSTM, with the budgets of the runs it is compared with:

* PTB: configs/ptb_small.py's full schedule (13 epochs, lr 1 for 4 then x0.5 per epoch), the
  schedule of the unregularised baseline measured in experiments/zaremba2014 (test 113.04 and
  111.97, two seeds), so the two differ only in the regularisers.
* WikiText-2 (33,278-word vocabulary, 2.09M training tokens, 2.2x PTB): 6 epochs, lr 1 for 2
  then x0.5 per epoch (the same schedule shape compressed, as the ablation's), because an epoch
  costs about 2.5x a PTB epoch here; no WikiText-2 run of ours is longer.

Nothing was tuned on these corpora (no learning rate or dropout search): the rates are the
ablation's. Commands (the two points are independent; ``--task_index``/``--num_tasks=2`` runs
them side by side):

    rnnlm-sweep --config experiments/remedies/long.py --workdir runs/remedies_long
    python experiments/remedies/table.py runs/remedies_long
"""

from __future__ import annotations

import pathlib

from rnnlm_jax.sweep import import_file

_ABLATION = import_file(pathlib.Path(__file__).resolve().parent / "sweep.py")

PTB = {"data.name": "ptb", "train.num_epochs": 13, "optim.lr_hold_epochs": 4}
WIKITEXT2 = {"data.name": "wikitext2", "train.num_epochs": 6, "optim.lr_hold_epochs": 2}


def get_config():
  return _ABLATION.get_config()  # configs/ptb_small.py; budgets are set per point


def get_sweep():
  return [dict(_ABLATION.AWD, **PTB, seed=0), dict(_ABLATION.AWD, **WIKITEXT2, seed=0)]
