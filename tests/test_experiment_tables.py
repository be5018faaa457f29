"""Every experiment table with committed records re-prints from them and its README shows
exactly what ``python scripts/tables.py NAME`` prints (issue 20: no number that cannot be
re-printed; rows whose records are gone say "record lost")."""

import importlib.util
import json

import pytest

from helpers import REPO


def _tables_module():
  spec = importlib.util.spec_from_file_location("experiment_tables", REPO / "scripts/tables.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


tables = _tables_module()
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


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_row_has_records_or_says_record_lost(name):
  spec = json.loads((REPO / "experiments" / name / "paper.json").read_text())
  for t in spec["tables"]:
    for row in t.get("rows", []):
      assert bool(row.get("runs")) != bool(row.get("lost")), row["label"]
      for d in row.get("runs", []):
        assert (REPO / "experiments" / name / d / "metrics.jsonl").is_file(), d
    if t.get("kind") == "bench":
      assert (REPO / "experiments" / name / t["file"]).is_file()


def test_verdicts_follow_the_tolerance():
  assert tables.within(116.7, 114.5, {"relative": 0.02, "side": "at_most"})
  assert not tables.within(116.9, 114.5, {"relative": 0.02, "side": "at_most"})
  assert tables.within(8.25, 8.5, {"absolute": 0.3})
  assert not tables.within(8.1, 8.5, {"absolute": 0.3})
  assert tables.within(98.2, 98.0, {"absolute": 0.0, "side": "at_least"})
  assert not tables.within(97.9, 98.0, {"absolute": 0.0, "side": "at_least"})
  assert tables.fmt_tolerance({"absolute": 0.0, "side": "at_least"}) == "≥ paper - 0"
