"""rnnlm-report --atlas (rnnlm_jax/report/atlas.py) on hand-written sweeps: one halving search
per cell (the cell only in config.json, as when set on the command line), a promoted point whose
later validation must not count, diverged seeds before and after the first rung's budget, a
running and a missing point; the numbers behind the heatmap, the clip rates, the best group per
(cell, clip mode), the four PNGs, the command line."""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import statistics
import subprocess
import sys

import pytest

from rnnlm_jax.report import atlas, atlas_tables, records, stats

BUDGET = 30  # the first rung (train.max_steps)
LRS = (0.1, 1.0)
CLIPS = (("none", 0.0), ("global_norm", 1.0), ("global_norm", 5.0))
# (cell, lr, clip_mode, clip_value) -> validation perplexity at step 30 of seeds 0 and 1;
# "div" = diverged by step 20, "late" = promoted, valid 150 at step 30, diverged at step 60,
# "run" = running at step 10, "missing" = no workdir.
PPL = {
    ("lstm", 0.1, "none", 0.0): (200.0, "run"),
    ("lstm", 0.1, "global_norm", 1.0): (180.0, 184.0),
    ("lstm", 0.1, "global_norm", 5.0): (170.0, 172.0),
    ("lstm", 1.0, "none", 0.0): (400.0, 420.0),
    ("lstm", 1.0, "global_norm", 1.0): (120.0, 124.0),
    ("lstm", 1.0, "global_norm", 5.0): (110.0, "late"),
    ("gru", 0.1, "none", 0.0): (210.0, 214.0),
    ("gru", 0.1, "global_norm", 1.0): (190.0, "missing"),
    ("gru", 0.1, "global_norm", 5.0): (180.0, 186.0),
    ("gru", 1.0, "none", 0.0): (90.0, "div"),
    ("gru", 1.0, "global_norm", 1.0): (130.0, 136.0),
    ("gru", 1.0, "global_norm", 5.0): (70.0, 230.0),  # mean 150, exp(mean loss) 127
}
PROMOTED = {("lstm", 1.0, "global_norm", 5.0), ("lstm", 1.0, "global_norm", 1.0)}
KEYS = ["optim.learning_rate", "optim.clip_mode", "optim.clip_value", "seed"]


def _name(lr, mode, value, seed):
  return f"learning_rate={lr:g},clip_mode={mode},clip_value={value:g},seed={seed}"


def _clipped(lr: float, value: float, mode: str) -> float:
  """The fake fraction of updates clipped: 0 unclipped, else lr / threshold (at most 1)."""
  return 0.0 if mode == "none" else min(1.0, lr / value)


def _events(lr, mode, value, seed, steps, ppl, late_valid=None):
  ev = [{"split": "train", "step": s, "loss": 5.0, "lr": lr, "grad_norm": 3.0 + seed,
         "grad_norm_p50": 2.0 * (1 + s / 10), "grad_norm_p90": 4.0 * (1 + s / 10),
         "grad_norm_max": 9.0, "clipped": _clipped(lr, value, mode)} for s in steps]
  if ppl is not None:
    ev.append({"split": "valid", "step": BUDGET, "loss": math.log(ppl), "perplexity": ppl,
               "best": True})
  if late_valid is not None:  # a promoted point's later, better validation: not counted
    ev.append({"split": "valid", "step": 3 * BUDGET, "loss": math.log(late_valid),
               "perplexity": late_valid, "best": True})
  return ev


def _write(path: pathlib.Path, config: dict, status: dict, events: list[dict]) -> None:
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps(config))
  (path / "status.json").write_text(json.dumps(status))
  (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def make_atlas(root: pathlib.Path) -> pathlib.Path:
  """root/cell=lstm/, root/cell=gru/: halving sweeps (rung 0 at 30 updates) of PPL."""
  for cell in ("lstm", "gru"):
    sweep_dir = root / f"cell={cell}"
    points = []
    for (c, lr, mode, value), seeds in PPL.items():
      if c != cell:
        continue
      for seed, ppl in enumerate(seeds):
        name = _name(lr, mode, value, seed)
        points.append({"name": name, "overrides": {
            "optim.learning_rate": lr, "optim.clip_mode": mode, "optim.clip_value": value,
            "seed": seed}})
        if ppl == "missing":
          continue
        promoted = (cell, lr, mode, value) in PROMOTED
        max_steps = 3 * BUDGET if promoted else BUDGET
        config = {"seed": seed, "data": {"name": "ptb"}, "model": {"cell": cell},
                  "optim": {"learning_rate": lr, "clip_mode": mode, "clip_value": value},
                  "train": {"max_steps": max_steps}}
        if ppl == "div":
          status, events = {"state": "diverged", "step": 20}, _events(lr, mode, value, seed,
                                                                      (10, 20), None)
        elif ppl == "run":
          status, events = {"state": "running", "step": 10}, _events(lr, mode, value, seed,
                                                                     (10,), None)
        elif ppl == "late":
          status = {"state": "diverged", "step": 60}
          events = _events(lr, mode, value, seed, (10, 20, 30, 40, 50, 60), 150.0)
        else:
          steps = (10, 20, 30) + ((40, 50, 60, 70, 80, 90) if promoted else ())
          status = {"state": "finished", "step": max_steps}
          events = _events(lr, mode, value, seed, steps, ppl, ppl / 2 if promoted else None)
        _write(sweep_dir / name, config, status, events)
    search = {"method": "halving", "eta": 3, "min_budget": BUDGET,
              "budget_key": "train.max_steps", "full_budget": 3 * BUDGET, "metric": "loss",
              "mode": "min", "rungs": [{"rung": 0, "budget": BUDGET}, {"rung": 1, "budget": 90}]}
    (sweep_dir / "sweep.json").write_text(json.dumps(
        {"config": "no/such/file.py", "keys": KEYS, "points": points, "search": search}))
  return root


@pytest.fixture(name="atlas_dir")
def fixture_atlas_dir(tmp_path):
  return make_atlas(tmp_path / "atlas")


def _grid(atlas_dir):
  dirs = atlas.sweep_dirs([atlas_dir])
  b = atlas.budget_of(dirs)
  return atlas.collect(dirs), b


def test_heatmap_grid_at_the_first_rung(atlas_dir):
  recs, b = _grid(atlas_dir)
  assert b == ("train.max_steps", BUDGET, "loss", "min")
  data = atlas.heatmap_grid(recs, b.key, b.budget)
  assert data["unit"] == "perplexity"
  assert data["cells"] == ["gru", "lstm"]  # sweep directories by name
  assert data["clips"] == ["none", "global_norm 1", "global_norm 5"]
  assert data["lrs"] == [0.1, 1.0]
  g = data["grid"]
  two = g[("lstm", "global_norm 1", 1.0)]  # promoted: its step-90 validation is not counted
  assert two["mean"] == pytest.approx(122.0) and two["n"] == 2
  assert two["std"] == pytest.approx(math.sqrt(8.0))
  assert (two["diverged"], two["pending"]) == (0, 0)
  late = g[("lstm", "global_norm 5", 1.0)]  # diverged after the budget: counted with its value
  assert (late["mean"], late["n"], late["diverged"]) == (pytest.approx(130.0), 2, 0)
  div = g[("gru", "none", 1.0)]
  assert (div["mean"], div["std"], div["n"], div["diverged"]) == (90.0, None, 1, 1)
  assert g[("lstm", "none", 0.1)]["pending"] == 1  # running, not at the budget yet
  assert g[("gru", "global_norm 1", 0.1)]["pending"] == 1  # no workdir
  assert g[("gru", "global_norm 1", 0.1)]["points"] == 2


def test_plain_sweep_at_the_end_of_runs(atlas_dir):
  """Without a halving search the points are compared at the end of their runs: the promoted
  points' best validation is then the later one."""
  for d in atlas.sweep_dirs([atlas_dir]):
    spec = json.loads((d / "sweep.json").read_text())
    del spec["search"]
    (d / "sweep.json").write_text(json.dumps(spec))
  recs, b = _grid(atlas_dir)
  assert b.budget is None
  g = atlas.heatmap_grid(recs, b.key, b.budget)["grid"]
  assert g[("lstm", "global_norm 1", 1.0)]["mean"] == pytest.approx(61.0)
  assert g[("lstm", "global_norm 5", 1.0)]["diverged"] == 1


def test_one_ordinary_sweep_directory(atlas_dir, tmp_path):
  """The same points in one directory with no sweep.json (model.cell varies between their
  configs): the same grid, less the missing point, at the end of each run."""
  flat = tmp_path / "flat"
  for d in atlas.sweep_dirs([atlas_dir]):
    for point in d.iterdir():
      if point.is_dir():
        shutil.copytree(point, flat / f"{d.name},{point.name}")
  recs, b = _grid(flat)
  assert atlas.sweep_dirs([flat]) == [flat] and b.budget is None
  g = atlas.heatmap_grid(recs, b.key, b.budget)["grid"]
  assert g[("gru", "global_norm 1", 0.1)]["points"] == 1
  assert (g[("gru", "none", 1.0)]["n"], g[("gru", "none", 1.0)]["diverged"]) == (1, 1)


def test_clip_rate_and_best_groups(atlas_dir):
  recs, b = _grid(atlas_dir)
  lines = atlas.clip_rate_lines(recs, b.key, b.budget)
  assert lines["lstm"] == {0.1: [(1.0, pytest.approx(0.1)), (5.0, pytest.approx(0.02))],
                           1.0: [(1.0, 1.0), (5.0, pytest.approx(0.2))]}
  rungs = atlas.rung_budgets(atlas.sweep_dirs([atlas_dir]))
  assert set(map(tuple, rungs.values())) == {(30, 90)}
  best = {(g["cell"], g["mode"]): g for g in atlas.best_groups(recs, b, rungs)}
  assert set(best) == {("gru", "none"), ("gru", "global_norm"), ("lstm", "none"),
                       ("lstm", "global_norm")}
  # gru none at lr 1 has a diverged seed (ranks last, as in the halving search): lr 0.1 wins.
  gru_none = best[("gru", "none")]
  assert (gru_none["lr"], gru_none["value"]) == (0.1, 212.0)
  assert gru_none["score"] == pytest.approx((math.log(210) + math.log(214)) / 2)
  # Ranked by the mean validation loss, as the search ranks: (70, 230) beats (130, 136),
  # though its mean perplexity (150) is higher.
  assert (best[("gru", "global_norm")]["clip"], best[("gru", "global_norm")]["lr"]) == (
      "global_norm 5", 1.0)
  # The group trained furthest wins its mode: at the last rung (90 updates) global norm 1 at
  # lr 1 (61 = 122 / 2) against global norm 5, whose promoted seed 1 diverged on the way.
  lstm_gn = best[("lstm", "global_norm")]
  assert (lstm_gn["clip"], lstm_gn["lr"], lstm_gn["budget"]) == ("global_norm 1", 1.0, 90.0)
  assert lstm_gn["value"] == pytest.approx(61.0)
  assert {g["budget"] for k, g in best.items() if k != ("lstm", "global_norm")} == {30.0}
  # A seed not at the budget yet is left out of its group's mean: 200 (1 seed) beats 410.
  assert best[("lstm", "none")]["lr"] == 0.1
  steps, vals = atlas.seed_series(best[("lstm", "global_norm")]["points"], "valid",
                                  "perplexity", statistics.fmean)
  assert steps == [30, 90] and vals == [pytest.approx(122.0), pytest.approx(61.0)]


def test_write_atlas_and_cli(atlas_dir, tmp_path):
  paths, notes = atlas.write_atlas([atlas_dir])  # the default place: DIR/plots/
  assert paths == [atlas_dir / "plots" / f"atlas_{f}.png" for f in atlas.FIGURES] and not notes
  assert all(p.stat().st_size > 10_000 for p in paths)
  # Several directories (each a sweep) need --out; a bad call is one error line, status 2.
  bad = subprocess.run([sys.executable, "-m", "rnnlm_jax.report_main", "--atlas",
                        str(atlas_dir / "cell=gru"), str(atlas_dir / "cell=lstm")],
                       capture_output=True, text=True, check=False)
  assert bad.returncode == 2 and "needs --out" in bad.stderr, bad.stderr


def test_refuses_a_key_that_varies_within_a_group(atlas_dir):
  cfg_path = next((atlas_dir / "cell=lstm").glob("learning_rate=1,clip_mode=none*seed=1"))
  cfg = json.loads((cfg_path / "config.json").read_text())
  cfg["model"]["hidden_size"] = 9
  (cfg_path / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(records.ReportError, match="model.hidden_size varies within"):
    atlas.collect(atlas.sweep_dirs([atlas_dir]))


# ----------------------------------------------------------------------------- results tables


def _groups(atlas_dir):
  recs, b = _grid(atlas_dir)
  return atlas_tables.groups(recs, b)


def test_groups_trains_and_compare(atlas_dir):
  gs = _groups(atlas_dir)
  below = 1000.0  # the "uniform prediction" of the fake vocabulary
  bare, gn1 = gs[("lstm", "none", 1.0)], gs[("lstm", "global_norm 1", 1.0)]
  assert bare.values == (400.0, 420.0) and bare.clip_rate == 0.0
  assert gn1.values == (122.0 - 2, 122.0 + 2) and gn1.clip_rate == 1.0  # lr / threshold
  assert gn1.norm_p50 == pytest.approx(statistics.median([2.0 * (1 + s / 10) for s in (10, 20, 30)]))
  assert atlas_tables.trains(gn1, below) and atlas_tables.trains(bare, below)
  assert not atlas_tables.trains(bare, 410.0) and atlas_tables.blew_up(bare, 410.0)
  what, change, p = atlas_tables.compare(gn1, bare, below)
  assert what == "better" and change == pytest.approx(100 * (122 / 410 - 1))
  assert p == pytest.approx(stats.welch([120, 124], [400, 420]).p) and p < 0.05
  div = gs[("gru", "none", 1.0)]  # one seed diverged: blew up, never "trains"
  assert (div.values, div.diverged) == ((90.0,), 1) and atlas_tables.blew_up(div, below)
  assert atlas_tables.compare(gs[("gru", "global_norm 1", 1.0)], div, below)[0] == (
      "trains, the other blew up")
  wide = gs[("gru", "global_norm 5", 1.0)]  # (70, 230): within the seed spread of (130, 136)
  assert atlas_tables.compare(wide, gs[("gru", "global_norm 1", 1.0)], below)[0] == (
      "within the seed spread")
  assert atlas_tables.compare(gs[("lstm", "none", 0.1)], bare, below)[0] == "to do"  # running


def test_gain_band_and_modes_tables(atlas_dir):
  gs = _groups(atlas_dir)
  gain = atlas_tables.gain_table(gs, 1000.0).splitlines()
  # lstm: unclipped trains only at lr 1 (lr 0.1 still running); the best clipped group is
  # global norm 1 at lr 1 (122 < 130 of global norm 5), 70 % below the unclipped one.
  lstm = next(l for l in gain if l.startswith("| lstm"))
  assert "| none, lr 1 | 410 ± 14 | 1 |" in lstm
  assert "| global_norm 1, lr 1 | 122 ± 2.8 | 0.1, 1 | better, -70.2 %" in lstm
  gru = next(l for l in gain if l.startswith("| gru"))
  assert "| none, lr 0.1 | 212 ± 2.8 | 0.1 |" in gru and "global_norm 1, lr 1 | 133" in gru
  bands = atlas_tables.band_table(gs, 1000.0)
  # lstm global norm: clip rates 1 (t 1, lr 1: better), 0.2, 0.1 (lr 0.1, t 1: the unclipped
  # still running -> not counted) and 0.02.
  row = next(l for l in bands.splitlines() if l.startswith("| lstm | fires on ≥ 90"))
  # 1 group; threshold 1 over its median pre-clip norm up to the budget (p50s 4, 6, 8); better
  assert row.split(" | ")[2:5] == ["1", "0.17–0.17", "1"]
  modes = atlas_tables.modes_table(gs, 1000.0)
  assert "| lstm | 1 | 1: 122 ± 2.8 |" in modes  # no other mode in the fixture: no columns


def test_best_table_takes_the_last_rung(atlas_dir):
  recs, b = _grid(atlas_dir)
  dirs = atlas.sweep_dirs([atlas_dir])
  text = atlas_tables.best_table(recs, dirs, b, 1000.0,
                                 {"clip": "global_norm 5", "lr": 1.0, "label": "reference"})
  lstm = [l for l in text.splitlines() if l.startswith("| lstm")]
  # Both promoted lstm groups reached the second rung (90 updates): global norm 1 at lr 1 with
  # its seeds' best validation there (61), global norm 5 at lr 1 with one seed diverged at
  # step 60 (ranked after the one that trains); then the reference, the latter, again, with
  # its rank at the first rung (130: behind global norm 1 at lr 1's 122, of 6 groups).
  assert lstm[0].startswith("| lstm | global_norm 1, lr 1 | 90 | 61 ± 1.4 |")
  assert lstm[1].startswith("| lstm | global_norm 5, lr 1 | 90 | 55 (n=1); 1 of 2 div |")
  assert lstm[2].startswith("| lstm | reference | 90 | 55 (n=1); 1 of 2 div |")
  assert lstm[2].endswith("| 2 of 6 |") and len(lstm) == 3
  gru = [l for l in text.splitlines() if l.startswith("| gru")]
  assert all("| 30 |" in l for l in gru)  # no gru point went further than the first rung


def test_render_refuses_an_unknown_question(atlas_dir):
  with pytest.raises(records.ReportError, match="unknown atlas question 'speed'"):
    atlas_tables.render("speed", [atlas_dir], 1000.0)


def test_budgets_of_a_cell_spanning_a_search_and_a_plain_sweep():
  b = atlas.Budget("train.max_steps", 30.0)
  rungs = {"search": [30.0, 90.0], "below_the_ladder": [], "other_search": [10.0, 270.0]}
  search, plain = {"sweep": pathlib.Path("search")}, {"sweep": pathlib.Path("below_the_ladder")}
  # The order of the points does not decide: the plain sweep adds no rung, the search's count.
  assert atlas.budgets_of([plain, search], rungs, b) == [30.0, 90.0]
  assert atlas.budgets_of([search, plain], rungs, b) == [30.0, 90.0]
  assert atlas.budgets_of([plain], rungs, b) == [30.0]  # no search: the sweep's own budget
  assert atlas.budgets_of([search, {"sweep": "other_search"}], rungs, b) == [
      10.0, 30.0, 90.0, 270.0]
