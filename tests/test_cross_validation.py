"""k-fold cross-validation of the classifiers (issue 22): ``data.cv_folds`` / ``data.cv_fold``
and ``rnnlm-sweep --cv k``.

The folds partition the training split (stratified, seeded); fold ``i`` validates and the rest
trains (vocabulary from those rows only), the test split is untouched; a sweep with ``--cv k``
runs every point once per fold, and successive halving judges the folds of a point together.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest

from rnnlm_jax.data import classification as cdata
from rnnlm_jax.sweeps import halving
from rnnlm_jax.sweeps.spec import SweepError, apply_overrides, expand, product, sweep
from rnnlm_jax.sweep_main import cv_points
from rnnlm_jax.tasks import classify

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_folds_partition_the_rows_and_keep_the_class_mix():
  labels = np.array([0] * 23 + [1] * 7)
  np.random.default_rng(5).shuffle(labels)
  valids = []
  for fold in range(4):
    train, valid = cdata.cv_fold_rows(labels, 4, fold)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(valid) > 0)
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(30))
    for c, n in ((0, 23), (1, 7)):  # each class dealt evenly: n // 4 or n // 4 + 1 per fold
      assert n // 4 <= int(np.sum(labels[valid] == c)) <= n // 4 + 1
    valids.append(valid)
  assert sorted(np.concatenate(valids).tolist()) == list(range(30))  # disjoint, covering
  again = cdata.cv_fold_rows(labels, 4, 2)
  assert np.array_equal(again[1], valids[2])  # seeded
  assert not np.array_equal(cdata.cv_fold_rows(labels, 4, 2, seed=1)[1], valids[2])


@pytest.mark.parametrize("folds, fold", [(1, 0), (3, 3), (3, -1)])
def test_bad_folds_are_refused(folds, fold):
  with pytest.raises(cdata.DataError, match="cross-validation"):
    cdata.cv_fold_rows(np.zeros(10, int), folds, fold)


def _sms_config(**over):
  path = REPO / "configs" / "sms_spam.py"
  spec = importlib.util.spec_from_file_location("cfg_sms_cv", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return apply_overrides(mod.get_config(), over)


@pytest.mark.parametrize("over, match", [
    ({"data.cv_folds": 1}, "data.cv_folds must be 0"),
    ({"data.cv_folds": 3, "data.cv_fold": 3}, "data.cv_fold must be in 0..2"),
    ({"data.cv_fold": 1}, "needs data.cv_folds >= 2"),
])
def test_config_errors_are_one_line(over, match):
  with pytest.raises(ValueError, match=match):
    classify.validate_config(_sms_config(**over))


SMS = "".join(f"spam\tWIN a FREE prize {i}! call 0800{i} now\n" if i % 4 == 0 else
              f"ham\tok see you at {i} later , love\n" for i in range(80))


def test_a_fold_validates_and_the_rest_trains(iso):
  d = iso / "data" / "sms_spam"
  d.mkdir(parents=True)
  (d / "SMSSpamCollection").write_text(SMS)
  base = {"data.dir": str(iso / "data"), "model.hidden_size": 8, "model.embed_size": 6,
          "model.attention_size": 4}
  plain = classify.build_task(_sms_config(**base))
  n_train = len(plain.ids["train"])
  valid_sizes = []
  for fold in range(3):
    task = classify.build_task(_sms_config(**base, **{"data.cv_folds": 3, "data.cv_fold": fold}))
    assert len(task.ids["train"]) + len(task.ids["valid"]) == n_train
    assert task.data_fingerprint()["splits"]["test"] == plain.data_fingerprint()["splits"]["test"]
    valid_sizes.append(len(task.ids["valid"]))
  assert sum(valid_sizes) == n_train  # the folds' validation sets cover the training split


def test_sweep_cv_repeats_every_point_per_fold_and_halving_judges_them_together():
  base = _sms_config()
  overrides = product(sweep("model.cell", ["lstm", "gru"]), sweep("seed", [0]))
  got = cv_points(base, overrides, 3, overridden=set())
  assert base.data.cv_folds == 3
  assert [(o["model.cell"], o["data.cv_fold"]) for o in got] == [
      ("lstm", 0), ("lstm", 1), ("lstm", 2), ("gru", 0), ("gru", 1), ("gru", 2)]
  points = expand(base, got)
  assert points[0].config.data.cv_fold == 0 and points[2].config.data.cv_fold == 2
  assert list(halving.groups_of(points)) == ["cell=lstm", "cell=gru"]


@pytest.mark.parametrize("folds, task, overridden, match", [
    (1, "classify", set(), "k >= 2"),
    (3, "music", set(), "for classifier sweeps"),
    (3, "classify", {"data.cv_fold"}, "sets data.cv_fold itself"),
])
def test_sweep_cv_refusals(folds, task, overridden, match):
  base = _sms_config()
  base.task = task
  with pytest.raises(SweepError, match=match):
    cv_points(base, [{"seed": 0}], folds, overridden)


def _write_point(path: pathlib.Path, cell: str, fold: int, acc: float) -> None:
  path.mkdir(parents=True)
  config = {"task": "classify", "seed": 0, "data": {"name": "sms_spam", "cv_folds": 3,
                                                     "cv_fold": fold},
            "model": {"cell": cell}, "train": {"select_metric": "accuracy"}}
  events = [{"split": "train", "step": 10, "epoch": 1.0, "loss": 0.5},
            {"split": "valid", "step": 10, "epoch": 1.0, "loss": 0.3, "accuracy": acc},
            {"split": "test", "step": 10, "loss": 0.3, "accuracy": acc - 0.01,
             "checkpoint": "best_valid"}]
  (path / "config.json").write_text(json.dumps(config))
  (path / "status.json").write_text(json.dumps({"state": "finished", "step": 10, "epoch": 1.0,
                                                "reason": ""}))
  (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_the_report_aggregates_folds_like_seeds(tmp_path):
  from rnnlm_jax.report import render
  accs = {("lstm", 0): 0.90, ("lstm", 1): 0.92, ("lstm", 2): 0.97, ("gru", 0): 0.80,
          ("gru", 1): 0.84, ("gru", 2): 0.82}
  points = []
  for (cell, fold), acc in accs.items():
    name = f"cell={cell},seed=0,cv_fold={fold}"
    points.append({"name": name, "overrides": {"model.cell": cell, "seed": 0,
                                               "data.cv_fold": fold}})
    _write_point(tmp_path / name, cell, fold, acc)
  (tmp_path / "sweep.json").write_text(json.dumps(
      {"config": "configs/sweeps/classify_cells.py", "keys": ["model.cell", "seed",
                                                               "data.cv_fold"],
       "points": points}))
  paths = render.write_report(tmp_path, metric="accuracy", plots=False)
  md = pathlib.Path(paths["md"]).read_text()
  assert "cross-validation folds aggregated (rnnlm-sweep --cv): 0, 1, 2" in md
  test_lstm = [accs["lstm", f] - 0.01 for f in range(3)]
  mean, std = np.mean(test_lstm), np.std(test_lstm, ddof=1)
  rows = [l for l in md.splitlines() if l.startswith("| lstm |")]
  assert rows and rows[0].startswith(f"| lstm | {mean:.2f} ± {std:.4g} (3);"), (rows, md)
