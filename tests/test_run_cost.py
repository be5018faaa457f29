"""scripts/run_cost.py: CPU and wall time summed from provenance.json, invocations without
cpu_seconds (older records) or without an end (killed) reported, never estimated."""

import json

from helpers import REPO

from rnnlm_jax.sweeps.spec import import_file

run_cost = import_file(REPO / "scripts" / "run_cost.py")


def _run(path, invocations):
  path.mkdir(parents=True)
  (path / "provenance.json").write_text(json.dumps({"runs": invocations}))


def test_sums_cpu_and_wall_and_reports_what_it_cannot_count(tmp_path, capsys):
  sweep = tmp_path / "sweep"
  _run(sweep / "a", [{"start_time": "2026-12-07T10:00:00+00:00",
                      "end_time": "2026-12-07T10:30:00+00:00", "cpu_seconds": 1500.0}])
  _run(sweep / "b", [{"start_time": "2026-12-07T09:00:00+00:00", "end_time": None},  # killed
                     {"start_time": "2026-12-07T11:00:00+00:00",
                      "end_time": "2026-12-07T12:00:00+00:00", "cpu_seconds": 2100.0}])
  _run(sweep / "c", [{"start_time": "2026-12-06T10:00:00+00:00",  # before cpu_seconds existed
                      "end_time": "2026-12-06T10:06:00+00:00"}])
  _run(sweep / "d", [{"start_time": "2026-12-07T13:00:00+00:00", "end_time": None,  # killed
                      "checkpoint_time": "2026-12-07T13:20:00+00:00",  # after a checkpoint
                      "checkpoint_cpu_seconds": 1200.0}])
  (sweep / "not_a_run").mkdir()
  c = run_cost.cost(run_cost.run_dirs(sweep))
  assert (c.runs, c.cpu_s, c.wall_s, c.without_cpu, c.partial, c.unclosed) == (
      4, 4800.0, 6960.0, 1, 1, 1)
  assert (c.start, c.end) == ("2026-12-06T10:00:00+00:00", "2026-12-07T13:20:00+00:00")
  assert run_cost.run_dirs(sweep / "a") == [sweep / "a"]
  assert run_cost.main([str(sweep)]) == 0
  out = capsys.readouterr().out
  assert "4 run(s), 1.33 CPU-h measured, " in out
  assert ("1.93 h open (wall) (1 invocation(s) recorded before cpu_seconds (wall only)) "
          "(1 invocation(s) never closed (killed): counted to their last "
          "checkpoint) (1 invocation(s) never closed, with no checkpoint recorded: not counted)"
          in out)
  assert run_cost.main([str(tmp_path / "nope")]) == 2


def test_a_vmapped_group_counts_once_at_its_longest_member(tmp_path):
  window = lambda end, cpu: {"start_time": "2026-12-07T10:00:00+00:00",
                             "end_time": f"2026-12-07T10:{end}:00+00:00", "cpu_seconds": cpu,
                             "vmap_group": "g1"}
  _run(tmp_path / "m0", [window("30", 1700.0)])  # the group's process, open 30 min
  _run(tmp_path / "m1", [window("10", 600.0)])   # solved early, closed after 10 min
  _run(tmp_path / "alone", [{"start_time": "2026-12-07T11:00:00+00:00",
                             "end_time": "2026-12-07T11:06:00+00:00", "cpu_seconds": 300.0}])
  c = run_cost.cost(run_cost.run_dirs(tmp_path))
  assert (c.runs, c.cpu_s, c.wall_s, c.without_cpu) == (3, 2000.0, 2160.0, 0)


def test_training_time_sums_the_kept_intervals_at_their_logged_rates(tmp_path):
  run = tmp_path / "run"
  _run(run, [{"start_time": "2026-12-07T10:00:00+00:00", "end_time": None}])  # killed
  events = [{"split": "train", "step": 100, "steps_per_sec": None},  # compiled: no rate
            {"split": "train", "step": 300, "steps_per_sec": 4.0},
            {"split": "valid", "step": 300, "loss": 1.0},
            {"split": "train", "step": 400, "steps_per_sec": 2.0}]
  (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
  assert run_cost.training_time([run]) == (100.0, 1)  # 200 / 4 + 100 / 2; one interval unrated
  # an older language-model event logged tokens/s only: batch x bptt tokens per update
  (run / "config.json").write_text(json.dumps({"train": {"batch_size": 5}, "data": {"bptt": 10}}))
  events.append({"split": "train", "step": 500, "tokens_per_sec": 250.0})
  (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
  assert run_cost.training_time([run]) == (120.0, 1)  # + 100 updates at 250 / 50 per second
  assert run_cost.cost([run]).wall_s == 0.0  # what provenance alone cannot count
