"""Every experiment table with committed records re-prints from them and its README shows
exactly what ``python scripts/tables.py NAME`` prints (issue 20: no number that cannot be
re-printed; rows whose records are gone say "record lost")."""

import json

import pytest

from helpers import REPO

from rnnlm_jax.sweeps.spec import import_file

tables = import_file(REPO / "scripts" / "tables.py")
EXPERIMENTS = tables.experiments()


def test_the_experiments_with_records_have_a_paper_json():
  with_records = {p.parent.name for p in (REPO / "experiments").glob("*/records")}
  assert with_records <= set(EXPERIMENTS), "an experiment with records/ has no paper.json"
  assert {"remedies", "zaremba2014", "benchmarks"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_readme_shows_what_the_records_reprint(name):
  printed = tables.render(name)
  readme = (REPO / "experiments" / name / "README.md").read_text()
  shown = tables.blocks(readme)
  assert set(printed) == set(shown), (
      f"experiments/{name}/README.md: table blocks {sorted(shown)} but paper.json has "
      f"{sorted(printed)}")
  for table_id, md in printed.items():
    assert shown[table_id] == md, (
        f"experiments/{name}/README.md, table {table_id!r} differs from the records; "
        f"run: python scripts/tables.py {name} --write")


def test_experiments_readme_shows_the_summed_costs():
  shown = tables.blocks((REPO / "experiments" / "README.md").read_text())
  assert shown.get("costs") == tables.costs_summary(), (
      "experiments/README.md's cost summary differs from the records; run: "
      "python scripts/tables.py --costs --write")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_row_has_records_or_says_record_lost(name):
  spec = json.loads((REPO / "experiments" / name / "paper.json").read_text())
  for t in spec["tables"]:
    for row in t.get("rows", []) if t.get("kind", "runs") == "runs" else []:
      assert bool(row.get("runs")) != bool(row.get("lost")), row["label"]
      for d in row.get("runs", []):
        assert (REPO / "experiments" / name / d / "metrics.jsonl").is_file(), d
    if t.get("kind") == "bench":
      assert (REPO / "experiments" / name / t["file"]).is_file()
    if t.get("kind") in ("atlas", "grid", "select"):  # a records directory read as a sweep
      for d in tables.records_dirs(name, t):
        assert d.is_dir(), d
    for row in t["rows"] if t.get("kind") == "cost" else []:
      for d in row["records"]:
        assert (REPO / "experiments" / name / d).is_dir(), d


def test_verdicts_follow_the_tolerance():
  assert tables.within(116.7, 114.5, {"relative": 0.02, "side": "at_most"})
  assert not tables.within(116.9, 114.5, {"relative": 0.02, "side": "at_most"})
  assert tables.within(8.25, 8.5, {"absolute": 0.3})
  assert not tables.within(8.1, 8.5, {"absolute": 0.3})
  assert tables.within(98.2, 98.0, {"absolute": 0.0, "side": "at_least"})
  assert not tables.within(97.9, 98.0, {"absolute": 0.0, "side": "at_least"})
  assert tables.fmt_tolerance({"absolute": 0.0, "side": "at_least"}) == "≥ paper - 0"


def _synthetic_run(path, state, success, error_rate):
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps(
      {"task": "synthetic", "seed": 0, "synthetic": {"problem": "temporal_order", "length": 50,
                                                     "success_error_rate": 0.01}}))
  (path / "status.json").write_text(json.dumps(
      {"state": state, "step": 100, "success": success,
       "success_step": 100 if success else None, "error_rate": error_rate}))
  (path / "metrics.jsonl").write_text(json.dumps(
      {"split": "test", "step": 100, "loss": 0.1, "error_rate": error_rate}) + "\n")


def test_count_metrics_show_k_of_n_and_fisher(tmp_path, monkeypatch):
  """A yes/no metric (kind "count", e.g. solved): k/n over the runs that ended (a running run
  is not a failure yet), and Fisher's exact test against the reference row."""
  exp = tmp_path / "exp"
  for i, (state, ok) in enumerate([("finished", True)] * 4 + [("finished", False)]):
    _synthetic_run(exp / f"cr{i}", state, ok, 0.0 if ok else 0.5)
  for i in range(5):
    _synthetic_run(exp / f"sgd{i}", "finished", False, 0.7)
  _synthetic_run(exp / "sgd_running", "running", False, 0.7)
  monkeypatch.setattr(tables, "EXPERIMENTS", tmp_path)
  table = {"metrics": [{"name": "solved", "field": "success", "kind": "count"}],
           "rows": [{"label": "SGD", "runs": [f"sgd{i}" for i in range(5)]},
                    {"label": "SGD-CR", "runs": [f"cr{i}" for i in range(5)],
                     "reference": "SGD"}]}
  lines = tables.runs_table("exp", table).splitlines()
  assert lines[2] == "| SGD | 5 | 0/5 | — |"
  assert lines[3] == "| SGD-CR | 5 | 4/5 | solved 4/5 vs 0/5 of SGD; p = 0.048 (Fisher exact) |"
  table["rows"][0]["runs"].append("sgd_running")  # a running run: the row is not a result yet
  lines = tables.runs_table("exp", table).splitlines()
  assert lines[2].startswith("| SGD | 5 | 0/5 | not a result yet: running")
