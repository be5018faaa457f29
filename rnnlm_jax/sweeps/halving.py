"""Successive halving over a sweep: ``rnnlm-sweep --search halving --eta 3 --min_budget B``.

Every *group* (the points that differ only in ``seed``; they are judged together) is trained
for a first budget ``B`` (``train.num_epochs`` when the base config's ``train.max_steps`` is 0,
else ``train.max_steps``: the *budget key*), the best ``max(1, n // eta)`` groups by validation
go on to ``eta * B``, and so on; the last rung trains the survivors to the config's own run
length (the full budget). Rung budgets: ``B, eta B, eta^2 B, ...`` while below the full
budget, then the full budget (``B = 1, eta = 3`` and 13 epochs: 1, 3, 9, 13). A point is
extended from rung to rung by the workdir contract (a finished run re-run with a larger run
length trains on from its checkpoint, :func:`rnnlm_jax.sweeps.run._run_lengthened`).

A group's score at rung ``r`` is the mean over its seeds of each seed's best validation value
of the task's selection metric (:func:`selection`: LM ``loss``, classify its
``train.select_metric``, music ``loss``) among the valid events logged up to the rung's budget
(``epoch <= b`` / ``step <= b``), so later training of a promoted point does not change a rung
already decided. A seed that diverged, or logged no finite validation value, scores the worst
value, so its group ranks last. Ties go to the group that comes first in the sweep.

Decisions are taken from the records on disk only (status.json, config.json, metrics.jsonl of
every point; :func:`rung_state`), deterministically, so every shard of an array job takes the
same ones with no coordinator, and re-running the command picks up at the first rung that is
not complete. A rung is complete when every point of it has *reached* its budget
(:func:`reached`: diverged; finished with a run length of at least the budget; or logged
progress past it). A task that has trained its share of a rung while other shards' points are
still training waits for them (``--halving_wait_s``, polling every ``--halving_poll_s``) and
otherwise returns with :data:`EXIT_WAITING`; re-running it (or any task) continues.

``sweep.json`` gets a ``"search"`` entry: ``{"method": "halving", "eta", "min_budget",
"budget_key", "full_budget", "metric", "mode", "rungs": [{"rung", "budget", "groups",
"points", "complete", "scores": {group: mean}, "promoted": [groups, best first]}]}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
import uuid
from typing import Callable, Sequence

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import tasks
from rnnlm_jax.sweeps import plan as plan_lib
from rnnlm_jax.sweeps.run import SWEEP_FILE, SweepResult, run_sweep
from rnnlm_jax.sweeps.spec import REPLICATE_KEYS, Point, SweepError, apply_overrides, point_name

SEED_KEY = "seed"
EXIT_WAITING = 75  # sysexits' EX_TEMPFAIL: a rung waits for other tasks; re-run to continue
EPS = 1e-9


# ----------------------------------------------------------------------------- pure parts


def budget_key(config) -> tuple[str, float]:
  """(the budget key, the full budget) of a config: ``train.max_steps`` when it is set
  (> 0), else ``train.num_epochs``."""
  max_steps = int(config.train.get("max_steps", 0) or 0)
  if max_steps > 0:
    return "train.max_steps", max_steps
  return "train.num_epochs", config.train.num_epochs


def rung_budgets(min_budget: float, full: float, eta: int) -> list:
  """``[B, eta B, eta^2 B, ...]`` below ``full``, then ``full`` (integers stay integers).

  Raises:
    SweepError: ``eta < 2``, ``min_budget <= 0``, or a fractional budget for an integer key.
  """
  if not isinstance(eta, int) or eta < 2:
    raise SweepError(f"--eta must be an integer >= 2, got {eta}")
  if not min_budget or min_budget <= 0:
    raise SweepError(f"--min_budget must be > 0, got {min_budget}")
  if isinstance(full, int):
    if float(min_budget) != int(min_budget):
      raise SweepError(f"--min_budget={min_budget}: the budget key takes whole numbers")
    min_budget = int(min_budget)
  out, b = [], min_budget
  while b < full:
    out.append(b)
    b *= eta
  return out + [full]


def group_name(point: Point) -> str:
  """The name of a point's group: its overrides less ``seed`` and ``data.cv_fold`` (``--cv``'s
  folds are judged together like seeds; ``base`` when nothing is left)."""
  return point_name({k: v for k, v in point.overrides.items() if k not in REPLICATE_KEYS})


def groups_of(points: Sequence[Point]) -> dict[str, list[Point]]:
  """Group name -> its points (seeds), both in sweep order."""
  out: dict[str, list[Point]] = {}
  for p in sorted(points, key=lambda p: p.index):
    out.setdefault(group_name(p), []).append(p)
  return out


def selection(config) -> tuple[str, str]:
  """(validation metric, "min" | "max") that picks a run's best checkpoint, as the trainer
  does: the task's ``select_metric``/``select_mode`` (callables of the config allowed); a
  config with ``train.select_metric`` (classify) chooses its own."""
  chosen = config.train.get("select_metric", None)
  if chosen:
    from rnnlm_jax.tasks import classify  # pylint: disable=import-outside-toplevel
    return str(chosen), classify.SELECT_METRICS[str(chosen)]
  task = tasks.get_task(config)
  metric, mode = task.select_metric, task.select_mode
  return (metric(config) if callable(metric) else metric,
          mode(config) if callable(mode) else mode)


def worst(mode: str) -> float:
  return math.inf if mode == "min" else -math.inf


def value_at(events: Sequence[dict], metric: str, mode: str, key: str, budget: float) -> float:
  """The best finite ``metric`` among the valid events logged up to ``budget`` (``epoch`` for
  ``train.num_epochs``, ``step`` for ``train.max_steps``); the worst value if there is none."""
  field = "epoch" if key == "train.num_epochs" else "step"
  vals = []
  for e in events:
    if e.get("split") != "valid":
      continue
    at, v = e.get(field), e.get(metric)
    try:
      at, v = float(at), float(v)
    except (TypeError, ValueError):
      continue
    if at <= budget + EPS and math.isfinite(v):
      vals.append(v)
  if not vals:
    return worst(mode)
  return min(vals) if mode == "min" else max(vals)


def reached(status: dict | None, config: dict | None, key: str, budget: float) -> bool:
  """Whether a point (its status.json and config.json dicts) has trained for ``budget``:
  diverged (it never trains on); finished with a run length of at least ``budget``; or its
  status shows progress (``epoch`` / ``step``) of at least ``budget`` (training further)."""
  if not status:
    return False
  state = status.get("state")
  if state == "diverged":
    return True
  if state == "finished" and config:
    section, field = key.split(".")
    length = (config.get(section) or {}).get(field)
    if isinstance(length, (int, float)) and length + EPS >= budget:
      return True
  progress = status.get("epoch" if key == "train.num_epochs" else "step")
  return isinstance(progress, (int, float)) and progress + EPS >= budget


def rank(scores: dict[str, float], order: Sequence[str], mode: str) -> list[str]:
  """Group names best first (``mode`` min: lowest score first); ties in ``order``."""
  sign = 1.0 if mode == "min" else -1.0
  pos = {g: i for i, g in enumerate(order)}
  return sorted(order, key=lambda g: (sign * scores[g], pos[g]))


def mean_score(values: Sequence[float], mode: str) -> float:
  """The mean of a group's seed values; the worst value if any seed has none (or diverged)."""
  if not values or any(not math.isfinite(v) for v in values):
    return worst(mode)
  return math.fsum(values) / len(values)


# ----------------------------------------------------------------------------- records


def _read_json(path: pathlib.Path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def point_files(root: pathlib.Path, name: str) -> tuple[dict | None, dict | None, list[dict]]:
  """(status.json, config.json, events of metrics.jsonl) of a point; None/[] when absent."""
  from rnnlm_jax.report.records import read_events  # pylint: disable=import-outside-toplevel
  d = root / name
  return _read_json(d / "status.json"), _read_json(d / "config.json"), read_events(
      d / "metrics.jsonl")


@dataclasses.dataclass(frozen=True)
class Search:
  """A halving search's parameters (the same in every task and every re-run)."""
  eta: int
  min_budget: float
  key: str
  full: float
  metric: str
  mode: str

  @property
  def budgets(self) -> list:
    return rung_budgets(self.min_budget, self.full, self.eta)

  def record(self) -> dict:
    return {"method": "halving", "eta": self.eta, "min_budget": self.min_budget,
            "budget_key": self.key, "full_budget": self.full, "metric": self.metric,
            "mode": self.mode}


def make_search(points: Sequence[Point], eta: int, min_budget: float) -> Search:
  """The :class:`Search` of a sweep's points.

  Raises:
    SweepError: a synthetic-task sweep (its runs stop at their own success or cap and are
      never extended), a sweep that varies the budget key or the selection metric, bad
      ``eta`` / ``min_budget``.
  """
  if tasks.get_task(points[0].config).group_key is not None:
    raise SweepError("--search halving needs runs that can be trained on (language-model, "
                     "music or classification points); synthetic-task runs stop at their own "
                     "success or step cap")
  keys = {budget_key(p.config) for p in points}
  if len(keys) > 1:
    raise SweepError("--search halving: the points differ in their run length "
                     f"({sorted(keys)[:2]}); the full budget must be the same for all")
  rules = {selection(p.config) for p in points}
  if len(rules) > 1:
    raise SweepError(f"--search halving: the points select by different metrics "
                     f"({sorted(rules)}); they cannot be ranked together")
  (key, full), = keys
  (metric, mode), = rules
  rung_budgets(min_budget, full, eta)  # validates
  if isinstance(full, int):
    min_budget = int(min_budget)
  return Search(eta=eta, min_budget=min_budget, key=key, full=full, metric=metric, mode=mode)


def rung_state(root: str | os.PathLike, points: Sequence[Point], search: Search) -> list[dict]:
  """The rungs as the records on disk decide them, up to the first incomplete one.

  Each rung: ``{"rung", "budget", "groups" (names, sweep order), "points" (names),
  "complete"}``; a complete rung that is not the last adds ``"scores"`` ({group: mean of its
  seeds' values at the budget}) and ``"promoted"`` (the best ``max(1, n // eta)`` groups,
  best first).
  """
  root = pathlib.Path(root)
  groups = groups_of(points)
  alive = list(groups)
  budgets = search.budgets
  files = {p.name: point_files(root, p.name) for p in points}
  rungs = []
  for r, b in enumerate(budgets):
    members = [p for g in alive for p in groups[g]]
    complete = all(reached(files[p.name][0], files[p.name][1], search.key, b) for p in members)
    rung = {"rung": r, "budget": b, "groups": list(alive), "points": [p.name for p in members],
            "complete": complete}
    rungs.append(rung)
    if not complete or r == len(budgets) - 1:
      break
    scores = {}
    for g in alive:
      vals = []
      for p in groups[g]:
        status, _, events = files[p.name]
        diverged = (status or {}).get("state") == "diverged"
        vals.append(worst(search.mode) if diverged else
                    value_at(events, search.metric, search.mode, search.key, b))
      scores[g] = mean_score(vals, search.mode)
    ranked = rank(scores, alive, search.mode)
    keep = ranked[:max(1, len(alive) // search.eta)]
    rung["scores"] = {g: (s if math.isfinite(s) else None) for g, s in scores.items()}
    rung["promoted"] = keep
    alive = [g for g in alive if g in keep]  # sweep order
  return rungs


def current_rung(rungs: Sequence[dict], search: Search) -> dict | None:
  """The first incomplete rung; None when the last rung is complete (the search is over)."""
  last = rungs[-1]
  if last["complete"] and last["rung"] == len(search.budgets) - 1:
    return None
  return last


# ----------------------------------------------------------------------------- sweep.json


def _decided(rungs: Sequence[dict]) -> int:
  return sum(1 for r in rungs if r.get("complete"))


def check_search(workdir: str | os.PathLike, search: Search) -> None:
  """An existing sweep.json's search must be this one (or absent: a plain sweep's directory
  may be searched).

  Raises:
    SweepError: it was written for other halving parameters.
  """
  path = pathlib.Path(workdir) / SWEEP_FILE
  old = (_read_json(path) or {}).get("search") if path.exists() else None
  if not old:
    return
  mine = search.record()
  diff = [k for k in mine if old.get(k) != mine[k]]
  if diff:
    raise SweepError(f"{path} records a search with {diff[0]}={old.get(diff[0])!r}, now "
                     f"{mine[diff[0]]!r}; use the same --search/--eta/--min_budget or a new "
                     "--workdir")


def write_search(workdir: str | os.PathLike, search: Search, rungs: Sequence[dict]) -> None:
  """Record the search and its rungs in sweep.json (which must exist), atomically. Tasks
  write the same decisions; one that has seen fewer rungs decided does not overwrite
  more."""
  path = pathlib.Path(workdir) / SWEEP_FILE
  record = _read_json(path)
  if record is None:
    return
  old = (record.get("search") or {}).get("rungs") or []
  if _decided(old) > _decided(rungs):
    return
  new = dict(search.record(), rungs=[dict(r) for r in rungs])
  if record.get("search") == new:
    return
  record["search"] = new
  tmp = path.parent / f".{SWEEP_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
  tmp.write_text(json.dumps(record, indent=2) + "\n")
  os.replace(tmp, path)


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass
class HalvingResult:
  """What a task of a halving search did.

  Attributes:
    sweep: the states of the points this task trained or skipped (the last call per point).
    rungs: the rungs as last decided (:func:`rung_state`).
    waiting: this task stopped because a rung waits for other tasks' points.
    message: why it stopped (waiting, failed points) or that the search is over.
  """
  sweep: SweepResult
  rungs: list
  waiting: bool = False
  message: str = ""

  @property
  def failed(self) -> list[str]:
    """The points of this task whose last training failed."""
    return [n for n, s in self.sweep.states.items() if s == "failed"]

  @property
  def exit_code(self) -> int:
    """0 search over, 1 a point failed, :data:`EXIT_WAITING` waiting for other tasks."""
    if self.failed:
      return 1
    return EXIT_WAITING if self.waiting else 0


def restored_points(root: str | os.PathLike, rung: dict, search: Search) -> list[str]:
  """The points of a rung after the first that must train on but have no checkpoint to train
  on from: their records were restored from an archive (scripts/archive_runs.py keeps no
  checkpoints, e.g. after a lost machine). Re-run as they are, they would start from step 0 and
  run straight to the rung's budget, losing the evaluations at the earlier rungs' budgets that
  the search's decisions read."""
  if rung["rung"] == 0:
    return []
  root = pathlib.Path(root)
  out = []
  for name in rung["points"]:
    status, config, _ = point_files(root, name)
    if (status and not ckpt_lib.has_checkpoint(root / name / "checkpoints")
        and not reached(status, config, search.key, rung["budget"])):
      out.append(name)
  return out


def set_aside(point_dir: pathlib.Path) -> pathlib.Path:
  """Moves a point's status.json and metrics.jsonl into ``restored/<time>/`` (config.json and
  provenance.json stay): the point then trains again from step 0, rung by rung."""
  dst = point_dir / "restored" / time.strftime("%Y%m%dT%H%M%S")
  dst.mkdir(parents=True, exist_ok=True)
  for f in ("status.json", "metrics.jsonl"):
    if (point_dir / f).exists():
      os.replace(point_dir / f, dst / f)
  return dst


def rung_points(points: Sequence[Point], rung: dict, search: Search) -> list[Point]:
  """Copies of the rung's points with the budget key set to the rung's budget."""
  names = set(rung["points"])
  return [dataclasses.replace(p, config=apply_overrides(p.config, {search.key: rung["budget"]}))
          for p in points if p.name in names]


def describe(rung: dict, search: Search) -> str:
  unit = "epochs" if search.key == "train.num_epochs" else "steps"
  return (f"rung {rung['rung'] + 1}/{len(search.budgets)} ({rung['budget']} {unit}, "
          f"{len(rung['groups'])} groups, {len(rung['points'])} points)")


def run_halving(points: Sequence[Point], workdir: str | os.PathLike, search: Search, *,
                task_index: int = 0, num_tasks: int = 1, vmap: bool = True,
                wait_s: float = 0.0, poll_s: float = 30.0,
                out: Callable[[str], None] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> HalvingResult:
  """Run this task's share of a halving search, rung after rung, until it is over, a point
  fails, or a rung waits for other tasks' points longer than ``wait_s``.

  Each rung's points (with the budget key set to its budget) are planned and sharded like a
  plain sweep's (:func:`rnnlm_jax.sweeps.plan.plan` / ``shard``: the same units in every
  task) and trained by :func:`rnnlm_jax.sweeps.run.run_sweep` (points that reached the budget
  are skipped, finished ones trained on). sweep.json is updated before each rung is trained.

  Raises:
    SweepInterrupted: as :func:`run_sweep`.
  """
  out = out or (lambda s: print(s, flush=True))
  result = SweepResult()
  waited, told = 0.0, set()
  while True:
    rungs = rung_state(workdir, points, search)
    write_search(workdir, search, rungs)
    rung = current_rung(rungs, search)
    if rung is None:
      best = rungs[-1]["groups"]
      return HalvingResult(result, rungs, message=f"halving search over: {len(rungs)} rungs; "
                           f"trained to the full budget: {', '.join(best)}")
    for prev in rungs[:-1]:
      if prev["rung"] not in told:
        told.add(prev["rung"])
        out(f"[halving] {describe(prev, search)} decided: promoted "
            f"{', '.join(prev['promoted'])}")
    units = plan_lib.plan(rung_points(points, rung, search), num_tasks, vmap)
    mine = plan_lib.shard(units, task_index, num_tasks)
    # Each task restores only its own share: the points it trains at this rung, so no two tasks
    # set aside or retrain the same point.
    my_names = {p.name for unit in mine for p in unit}
    restored = [n for n in restored_points(workdir, rung, search) if n in my_names]
    if restored:
      out(f"[halving] {describe(rung, search)}: {len(restored)} point(s) to train on have records "
          f"but no checkpoint (restored from an archive?): {', '.join(restored[:3])}"
          f"{' ...' if len(restored) > 3 else ''}; their status and metrics are set aside in "
          "<point>/restored/ and they train again from step 0 through the earlier rungs' budgets")
      by_name = {p.name: p for p in points}
      earlier = [b for b in search.budgets if b < rung["budget"]]
      for name in restored:
        set_aside(pathlib.Path(workdir) / name)
        for b in earlier:
          one = rung_points([by_name[name]], {"points": [name], "budget": b}, search)
          res = run_sweep(plan_lib.plan(one, 1, vmap), workdir, vmap=vmap, out=out)
          if any(st == "failed" for st in res.states.values()):
            result.states.update(res.states)
            return HalvingResult(result, rungs, message=f"{name}: failed while trained again "
                                 "through the earlier rungs; fix it and re-run")
      continue
    out(f"[halving] {describe(rung, search)}: task {task_index} of {num_tasks} trains "
        f"{sum(len(u) for u in mine)} of them")
    res = run_sweep(mine, workdir, vmap=vmap, out=out)
    result.states.update(res.states)
    result.skipped = sorted(set(result.skipped) | set(res.skipped))
    if any(s == "failed" for s in res.states.values()):
      return HalvingResult(result, rungs, message=f"{describe(rung, search)}: some points "
                           "failed; fix them and re-run to retry (the rung waits for them)")
    after = rung_state(workdir, points, search)
    if len(after) > len(rungs) or current_rung(after, search) is None:
      waited = 0.0
      continue
    if waited >= wait_s:
      write_search(workdir, search, after)
      missing = [n for n in rung["points"] if not reached(
          *point_files(pathlib.Path(workdir), n)[:2], search.key, rung["budget"])]
      return HalvingResult(result, after, waiting=True, message=(
          f"{describe(rung, search)} waits for {len(missing)} point(s) of other tasks "
          f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); re-run this "
          "command (or raise --halving_wait_s) to continue"))
    out(f"[halving] {describe(rung, search)}: waiting for other tasks' points")
    sleep(poll_s)
    waited += poll_s
