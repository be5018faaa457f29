"""Reading a sweep directory into records: one dict per point with its settings, state and
final metrics.

A sweep directory holds ``sweep.json`` and one workdir (see :mod:`rnnlm_jax.workdir`) per
point::

    DIR/sweep.json   {"config": path, "keys": [dotted keys that vary],
                      "points": [{"name": str, "overrides": {dotted_key: value}}, ...]}
    DIR/<name>/      config.json, status.json, metrics.jsonl of one run

Without ``sweep.json`` the points are the subdirectories holding a ``config.json`` and the
varying keys are those whose values differ between their configs. A point that has not
started (no config.json) gets its settings from the sweep file named in sweep.json (its
``get_config()`` with the point's overrides; "(unset)" only if that file cannot be loaded).

Every task writes the same events (README, "The workdir"; :mod:`rnnlm_jax.loop`), so one
reader serves all of them: :func:`read_events` (older spellings renamed in
:func:`normalise_event`), :func:`train_stats` (clipping and gradient norms of the train
events) and :func:`final_metrics` (the final valid/test events and the status).
"""

from __future__ import annotations

import json
import math
import pathlib
import statistics
from typing import Any, Iterable

from rnnlm_jax import tasks
from rnnlm_jax.workdir import DONE_STATES  # pylint: disable=unused-import  (report's import)
from rnnlm_jax.workdir import NON_COMPUTATION_KEYS, Workdir, flatten

ENDED_STATES = ("finished", "diverged", "failed")  # DONE_STATES (workdir): the ones that answer
# Event fields written before the one training loop, read under today's names.
OLD_EVENT_FIELDS = {"clip_rate": "clipped", "updates_per_sec": "steps_per_sec"}
# Event fields that are not metrics: bookkeeping, the final events' checkpoint, its step,
# training time, tokens scored (and ``valid_<metric>``, the final events' selection value).
NOT_METRICS = ("step", "epoch", "split", "best", "averaging", "checkpoint", "checkpoint_step",
               "train_seconds", "tokens")
# Metrics whose minimum over the validations is recorded as ``best_valid_<metric>``.
LOWER_IS_BETTER = ("loss", "perplexity", "bpc", "error_rate", "mse")
# Final test metrics recorded without the ``test_`` prefix (a synthetic task's test set is its
# only evaluation; results.csv and results.md name them so).
UNPREFIXED = ("error_rate", "mse")
# A record's ``metric_unit``, the evaluation metric of its curves: the first of these its
# events have, else ``loss``.
UNITS = ("bpc", "perplexity", "error_rate")
# How the report presents a task's runs (default metrics, table notes, plots).
KIND_OF_TASK = {"lm": "lm", "synthetic": "synthetic", "music": "seq", "classify": "seq"}


class ReportError(ValueError):
  """A sweep directory that cannot be reported (missing, empty, malformed, bad option)."""


# ----------------------------------------------------------------------------- values


def fmt_value(v: Any) -> str:
  """A config value as shown in labels; ``1`` and ``1.0`` both give ``"1"``."""
  if v is None:
    return "(unset)"
  if isinstance(v, bool):
    return str(v).lower()
  if isinstance(v, float):
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
  if isinstance(v, (list, tuple, dict)):
    return json.dumps(v)
  return str(v)


def num(v: Any) -> float | None:
  """A metric value as a float (NaN/inf kept; metrics.jsonl writes them as strings); None for
  anything else (booleans, None, text)."""
  if isinstance(v, bool) or v is None:
    return None
  try:
    return float(v)
  except (TypeError, ValueError):
    return None


def finite(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def quantile(sorted_vals: list[float], q: float) -> float:
  """Linear-interpolation quantile (numpy's default) of sorted values."""
  pos = q * (len(sorted_vals) - 1)
  lo = int(math.floor(pos))
  hi = min(lo + 1, len(sorted_vals) - 1)
  return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


# ----------------------------------------------------------------------------- files


def read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ReportError(f"{path} is not valid JSON ({e}); fix or remove it") from e


def normalise_event(event: dict) -> dict:
  """An event under today's field names (:data:`OLD_EVENT_FIELDS`; today's wins if both)."""
  out = dict(event)
  for old, new in OLD_EVENT_FIELDS.items():
    if old in out:
      out.setdefault(new, out.pop(old))
  return out


def read_events(path: pathlib.Path) -> list[dict]:
  """Events of a metrics.jsonl, normalised; a torn last line (run still writing) is skipped."""
  if not path.exists():
    return []
  events = []
  for line in path.read_text().splitlines():
    try:
      ev = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(ev, dict):
      events.append(normalise_event(ev))
  return events


def current_flat(config: dict) -> dict:
  """A nested config dict flattened to dotted keys, in today's spelling
  (:func:`rnnlm_jax.tasks.migrate_flat_config`)."""
  return tasks.migrate_flat_config(flatten(config))


def varying_keys(flat_configs: Iterable[dict]) -> list[str]:
  """Dotted keys (sorted) whose values differ between configs, ignoring
  ``workdir.NON_COMPUTATION_KEYS``."""
  flats = list(flat_configs)
  keys = sorted(set().union(*flats)) if flats else []
  out = []
  for k in keys:
    if k in NON_COMPUTATION_KEYS:
      continue
    if len({fmt_value(f.get(k)) for f in flats}) > 1:
      out.append(k)
  return out


def _discover(root: pathlib.Path) -> tuple[list[str], list[dict]]:
  """Points and varying keys of a directory without sweep.json."""
  names = sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())
  if not names and (root / "config.json").is_file():
    raise ReportError(f"{root} is a single run's workdir; pass the sweep directory holding "
                      "the runs (or a directory of workdirs)")
  if not names:
    raise ReportError(f"{root} has no sweep.json and no run subdirectories (with config.json); "
                      "is it a sweep directory?")
  flats = [current_flat(read_json(root / n / "config.json")) for n in names]
  keys = varying_keys(flats)
  # Without sweep.json a point's overrides are its values of the keys that vary.
  return keys, [{"name": n, "overrides": {k: f[k] for k in keys if k in f}}
                for n, f in zip(names, flats)]


def load_sweep(root: str | pathlib.Path) -> tuple[list[str], list[dict]]:
  """(varying keys, points) of a sweep directory, from sweep.json or by discovery."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise ReportError(f"{root} is not a directory; pass a sweep directory (with sweep.json)")
  spec_file = root / "sweep.json"
  if not spec_file.exists():
    return _discover(root)
  spec = read_json(spec_file)
  if not isinstance(spec, dict) or not isinstance(spec.get("points"), list):
    raise ReportError(f"{spec_file} has no \"points\" list; expected "
                      "{\"config\", \"keys\", \"points\": [{\"name\", \"overrides\"}]}")
  points = []
  for p in spec["points"]:
    if not isinstance(p, dict) or not isinstance(p.get("name"), str):
      raise ReportError(f"{spec_file}: every point needs a \"name\" string, got {p!r}")
    overrides = {_current_key(k): v for k, v in (p.get("overrides") or {}).items()}
    points.append({"name": p["name"], "overrides": overrides})
  keys = [_current_key(k) for k in spec.get("keys") or []]
  return keys, points


def load_search(root: str | pathlib.Path) -> dict | None:
  """The ``"search"`` entry of DIR/sweep.json (a halving search's rungs, see
  :mod:`rnnlm_jax.sweeps.halving`); None for a plain grid or without sweep.json."""
  spec_file = pathlib.Path(root) / "sweep.json"
  if not spec_file.is_file():
    return None
  spec = read_json(spec_file)
  search = spec.get("search") if isinstance(spec, dict) else None
  return search if isinstance(search, dict) else None


def _current_key(key: str) -> str:
  """A swept key of an older sweep.json in today's spelling (``task.length`` ->
  ``synthetic.length``, :data:`rnnlm_jax.tasks.SYNTHETIC_MOVED`)."""
  return tasks.SYNTHETIC_MOVED.get(key, key)


# ----------------------------------------------------------------------------- the events


def train_stats(train: list[dict]) -> dict:
  """Clip rate (the mean of ``clipped`` over the train events), pre-clip gradient-norm
  summary and last train loss of a run's train events.

  Runs log per-interval p50/p90 of the pre-clip norm: the run's ``grad_norm_p50`` /
  ``grad_norm_p90`` are the medians over intervals of those. LM runs made before those fields
  existed log only the interval mean: then they are the median / 90th percentile over
  intervals of the interval means.
  """
  out: dict[str, Any] = {}
  clip = [c for c in (num(e.get("clipped")) for e in train) if finite(c)]
  if clip:
    out["clip_rate"] = statistics.fmean(clip)
  p50 = [v for v in (num(e.get("grad_norm_p50")) for e in train) if finite(v)]
  p90 = [v for v in (num(e.get("grad_norm_p90")) for e in train) if finite(v)]
  if p50:
    out["grad_norm_p50"] = statistics.median(p50)
    out["grad_norm_p90"] = statistics.median(p90) if p90 else None
    out["grad_norm_source"] = "interval_p50_p90"
  else:
    means = sorted(v for v in (num(e.get("grad_norm")) for e in train) if finite(v))
    if means:
      out["grad_norm_p50"] = statistics.median(means)
      out["grad_norm_p90"] = quantile(means, 0.9)
      out["grad_norm_source"] = "interval_mean"
  gmax = [v for v in (num(e.get("grad_norm_max")) for e in train) if finite(v)]
  if gmax:
    out["grad_norm_max"] = max(gmax)
  losses = [num(e.get("loss")) for e in train]
  if losses:
    out["final_train_loss"] = losses[-1]
  return out


def final_event(events: list[dict], split: str) -> dict:
  """The event of ``split`` that scores the best-valid checkpoint: the last one marked
  ``checkpoint: "best_valid"`` (the final evaluation); without one (a language model has no
  final validation; a run still going) the last validation marked ``best``; else the last
  event of ``split`` ({} if none)."""
  of_split = [e for e in events if e.get("split") == split]
  for candidates in ([e for e in of_split if e.get("checkpoint") == "best_valid"],
                     [e for e in of_split if e.get("best") is True], of_split):
    if candidates:
      return candidates[-1]
  return {}


def metric_fields(event: dict) -> dict[str, float]:
  """The numeric metrics of an event (not :data:`NOT_METRICS`, not ``valid_<metric>``)."""
  out = {}
  for key, value in event.items():
    if key in NOT_METRICS or key.startswith("valid_") or num(value) is None:
      continue
    out[key] = num(value)
  return out


def final_metrics(events: list[dict], status: dict | None, flat: dict) -> dict:
  """The final metrics of a run, the same way for every task:

  - ``valid_<m>`` and ``test_<m>`` for every metric ``m`` of :func:`final_event` of valid and
    test (the test ``error_rate`` and ``mse`` unprefixed: :data:`UNPREFIXED`);
  - ``best_valid_<m>``: the minimum over the valid events of each :data:`LOWER_IS_BETTER`;
  - ``metric_unit``: the evaluation metric of the run's curves (:data:`UNITS`);
  - runs with a success criterion (``synthetic.success_error_rate``; status.json has ``success``):
    ``success`` and ``success_step`` of status.json, ``error_rate`` from status.json when no
    test event has it. A status without ``success`` (older runs) gets it from the final error
    rate and the criterion once the run has ended.
  """
  status = status or {}
  out: dict[str, Any] = {}
  for split in ("valid", "test"):
    for m, v in metric_fields(final_event(events, split)).items():
      out[m if split == "test" and m in UNPREFIXED else f"{split}_{m}"] = v
  valid = [e for e in events if e.get("split") == "valid"]
  for m in LOWER_IS_BETTER:
    vals = [v for v in (num(e.get(m)) for e in valid) if finite(v)]
    if vals:
      out[f"best_valid_{m}"] = min(vals)
  if events:
    out["metric_unit"] = next((u for u in UNITS if any(u in e for e in events)), "loss")
  threshold = flat.get("synthetic.success_error_rate")
  if "success" in status or finite(threshold):
    if out.get("error_rate") is None:
      out["error_rate"] = num(status.get("error_rate"))
    success = status.get("success")
    if success is None and status.get("state") in ENDED_STATES and finite(out["error_rate"]):
      success = out["error_rate"] < threshold if finite(threshold) else None
    out["success"] = success
    out["success_step"] = status.get("success_step")
  return out


# ----------------------------------------------------------------------------- records


def run_state(wd: pathlib.Path, status: dict | None) -> str:
  """A point's state for the report: status.json's, ``stale`` for a ``running`` status whose
  workdir lock no process holds (killed; re-running resumes it), ``missing`` without
  status.json."""
  if not status:
    return "missing"
  if status.get("state") == "running" and Workdir(wd).is_stale(status):
    return "stale"
  return status.get("state", "unknown")


def read_point(root: pathlib.Path, name: str, overrides: dict, keys: list[str],
               resolved: dict | None = None) -> dict:
  """One point's record: settings of the swept keys, state, final metrics, events.

  ``resolved`` is the flat config of the point as the sweep file defines it, used for the
  settings of a point that has no config.json yet (not started).
  """
  wd = root / name
  config = read_json(wd / "config.json") if (wd / "config.json").is_file() else None
  flat = current_flat(config) if config else dict(resolved or {})
  status = read_json(wd / "status.json") if (wd / "status.json").is_file() else None
  events = read_events(wd / "metrics.jsonl")
  task = tasks.task_name(flat) if flat else None
  rec: dict[str, Any] = {
      "name": name, "path": str(wd), "overrides": dict(overrides),
      "settings": {k: overrides[k] if k in overrides else flat.get(k) for k in keys},
      "task": task, "kind": KIND_OF_TASK.get(task, task),
      "state": run_state(wd, status),
      "step": status.get("step") if status else None,
      "epoch": status.get("epoch") if status else None,
      "reason": (status.get("reason") or "") if status else
                ("no workdir" if not wd.is_dir() else "no status.json (not started)"),
      "config": config, "flat": flat, "resolved": config is None and bool(resolved),
      "events": events}
  rec.update(train_stats([e for e in events if e.get("split") == "train"]))
  rec.update(final_metrics(events, status, flat))
  return rec


def resolve_from_sweep_file(root: pathlib.Path,
                            points: list[dict]) -> tuple[dict[str, dict] | None, str]:
  """({point name: flat config} as the sweep file defines them, note) for ``points``.

  The sweep file is the ``config`` path of DIR/sweep.json, relative to the current directory,
  else to DIR's parent (or grandparent); it is imported, ``get_config()`` is called and each
  point's overrides applied. (None, why) when it cannot be found or loaded.
  """
  spec_file = root / "sweep.json"
  spec = read_json(spec_file) if spec_file.is_file() else {}
  cfg = spec.get("config") if isinstance(spec, dict) else None
  if not isinstance(cfg, str) or not cfg:
    return None, "sweep.json names no sweep file"
  rel = pathlib.Path(cfg)
  tries = [rel] if rel.is_absolute() else [rel, root.resolve().parent / rel,
                                           root.resolve().parent.parent / rel]
  path = next((t for t in tries if t.is_file()), None)
  if path is None:
    return None, f"sweep file {cfg} not found (relative to the current directory or {root}'s parent)"
  try:
    from rnnlm_jax.sweeps import spec as sweep_lib
    base = sweep_lib.load_sweep_module(path).get_config()
    out = {p["name"]: current_flat(sweep_lib.apply_overrides(base, p["overrides"]).to_dict())
           for p in points}
  except Exception as e:  # any failure of the user's file: fall back to "(unset)"
    msg = str(e).splitlines()[0] if str(e) else ""
    return None, f"sweep file {cfg} could not be loaded ({type(e).__name__}: {msg})"
  return out, f"resolved from the sweep file {cfg}"


def collect(sweep_dir: str | pathlib.Path) -> list[dict]:
  """One record per point of the sweep in ``sweep_dir`` (missing points included).

  Each record has ``name``, ``path``, ``overrides`` (the point's, as sweep.json lists them;
  without sweep.json its values of the varying keys), ``settings`` ({varying key: value}, the
  same keys in every record, ``seed`` included; a point without config.json takes them from
  the sweep file, see :func:`resolve_from_sweep_file`, else None), ``task`` and ``kind``
  ("lm" | "seq" | "synthetic"; None when its config is unknown), ``state`` (finished |
  interrupted | diverged | failed | running | stale | missing: :func:`run_state`), ``step``, ``epoch``, ``reason``, the final metrics
  (:func:`final_metrics`: LM ``test_perplexity`` or ``test_bpc``, ``test_loss``,
  ``best_valid_*``; music/classify ``test_<m>``, ``valid_<m>``; synthetic ``error_rate``,
  ``mse``, ``test_loss``, ``success``, ``success_step``), the training summary
  (:func:`train_stats`: ``clip_rate``, ``grad_norm_p50``, ``grad_norm_p90``,
  ``grad_norm_max``, ``final_train_loss``), ``config`` (of config.json, None if absent),
  ``flat`` (the flat config: config.json's, else the sweep file's), ``resolve_note`` (for
  points without config.json: where their settings came from) and ``events`` (normalised).
  """
  root = pathlib.Path(sweep_dir)
  keys, points = load_sweep(root)
  if not points:
    raise ReportError(f"{root / 'sweep.json'} lists no points")
  unstarted = [p for p in points if not (root / p["name"] / "config.json").is_file()]
  resolved, note = resolve_from_sweep_file(root, unstarted) if unstarted else ({}, "")
  records = [read_point(root, p["name"], p["overrides"], keys, (resolved or {}).get(p["name"]))
             for p in points]
  extra = [k for k in varying_keys(r["flat"] for r in records if r["config"]) if k not in keys]
  if extra:  # keys that differ between the configs although sweep.json does not list them
    for r in records:
      r["settings"].update({k: r["flat"].get(k) for k in extra})
  for r in records:
    r["resolve_note"] = note if r["config"] is None else ""
  return records


def sweep_kind(records: list[dict]) -> str:
  """"lm", "synthetic" or "seq" (from the configs present; "lm" if there are none)."""
  kinds = {r["kind"] for r in records if r["kind"]}
  if len(kinds) > 1:
    raise ReportError(f"the sweep mixes kinds of runs ({', '.join(sorted(kinds))}); report "
                      "them separately")
  return kinds.pop() if kinds else "lm"
