"""Every sweep file under experiments/ expands and validates; the language-model ones train.

Each language-model point is shrunk (8 units, a tiny word corpus, 3 updates) and trained, so a
broken key or setting in an experiment fails here, not hours into a run. Music and
classification sweeps are trained a few steps by their own tests (test_music_model.py,
test_classifier.py).
"""

from __future__ import annotations

import pathlib

import pytest

from helpers import check_short_run

from rnnlm_jax import loop, tasks
from rnnlm_jax.sweeps.spec import expand, load_sweep_module
from rnnlm_jax.tasks import lm as lm_task
from rnnlm_jax.tasks import synthetic as synthetic_task

REPO = pathlib.Path(__file__).resolve().parent.parent
SWEEPS = sorted(p for p in (REPO / "experiments").glob("*/*.py")
                if "def get_sweep" in p.read_text())


def _sweep_id(path):
  return f"{path.parent.name}/{path.stem}"


def _points(path):
  mod = load_sweep_module(path)
  return expand(mod.get_config(), mod.get_sweep())


@pytest.mark.parametrize("path", SWEEPS, ids=_sweep_id)
def test_sweep_expands_and_validates(path):
  points = _points(path)
  assert points
  assert len({p.name for p in points}) == len(points)  # one workdir per point
  for p in points:
    tasks.validate_config(p.config)


LM_SWEEPS = [p for p in SWEEPS if all(tasks.task_name(q.config) == "lm" for q in _points(p))]
# Sweeps whose training is left to `-m slow`: remedies/sweep_cells is remedies/sweep's baseline
# and residual points with model.cell swapped (those train here by default, and
# test_remedies.py covers the cells' own paths: layer norm and weight drop for each cell, the
# residual stack with the GRU), while its 4 distinct programs cost ~15 s of compilation.
# karpathy2015/sweep (9 programs: 3 cells x 3 depths, 31 s; sweep_30ep: the same programs),
# clipping/ptb_word (ptb_word_low_lr: the same programs) and clipping/shakespeare_char (8
# programs each, one per clipping setting, ~20 s each) vary nothing that test_cells.py /
# test_train.py (cells, depths) and test_optim.py (every clipping mode inside the optimizer
# chain) do not already cover; their keys and values are still validated by
# test_sweep_expands_and_validates above.
# remedies/sweep (40 s): tests/golden's lm_remedies case trains every remedy at once through
# the CLI and test_remedies.py each one. CI trains all of them after the default run (.ci/run).
SLOW_TRAIN = {"remedies/sweep", "remedies/sweep_cells", "karpathy2015/sweep",
              "karpathy2015/sweep_30ep", "clipping/ptb_word",
              "clipping/ptb_word_low_lr", "clipping/shakespeare_char"}


@pytest.mark.parametrize(
    "path", [pytest.param(p, marks=pytest.mark.slow) if _sweep_id(p) in SLOW_TRAIN else p
             for p in LM_SWEEPS], ids=_sweep_id)
def test_lm_sweep_points_train_a_few_steps(path, tmp_path):
  corpus = tmp_path / "c.txt"
  corpus.write_text("".join(f"a b c d e f {i % 7} g\n" for i in range(300)))
  seen = set()
  for p in _points(path):
    c = p.config
    c.data.name, c.data.path, c.data.level = "text_file", str(corpus), "word"
    c.data.tfds_dir = str(tmp_path / "tfds")
    c.data.bptt = 5
    c.model.hidden_size = c.model.embed_size = 8
    c.train.batch_size, c.train.eval_batch_size = 4, 2
    c.train.max_steps, c.train.progress_bar = 3, False
    # Shrunk points that differ only in seed, learning rate or schedule lengths run the same
    # program: train one of them.
    key = c.to_dict()
    key.pop("seed")
    key["optim"] = {k: v for k, v in key["optim"].items()
                    if k not in ("learning_rate", "lr_hold_epochs")}
    key["train"] = {k: v for k, v in key["train"].items() if k != "num_epochs"}
    if repr(key) in seen:
      continue
    seen.add(repr(key))
    out = loop.train_and_evaluate(c, str(tmp_path / p.name))
    check_short_run(c, tmp_path / p.name, out, steps=3)


def test_karpathy_sizes_match_the_budget():
  mod = load_sweep_module(REPO / "experiments" / "karpathy2015" / "sweep.py")
  points = mod.get_sweep()
  assert len(points) == 9
  counts = [mod.num_params(p["model.cell"], p["model.num_layers"], p["model.hidden_size"])
            for p in points]
  assert all(abs(n - mod.PARAM_BUDGET) / mod.PARAM_BUDGET < 0.02 for n in counts), counts
  # deeper models of the same budget are narrower
  by_cell = {}
  for p in points:
    by_cell.setdefault(p["model.cell"], []).append(p["model.hidden_size"])
  assert all(h[0] > h[1] > h[2] for h in by_cell.values())
