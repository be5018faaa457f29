"""Sweeps: many runs from one base config and a list of overrides, resumable and shardable.

A sweep file (``configs/sweeps/NAME.py``) defines the base config and the points::

    from rnnlm_jax.config_base import base_config
    from rnnlm_jax.sweep import product, sweep, zip_

    def get_config():
      c = base_config()
      c.train.max_steps = 1000  # every point trains 1000 updates
      return c

    def get_sweep():
      # 2 cells x 2 (clip mode, threshold) pairs x 3 seeds = 12 points; seeds vary fastest.
      return product(
          sweep("model.cell", ["lstm", "gru"]),
          zip_(sweep("optim.clip_mode", ["none", "global_norm"]),
               sweep("optim.clip_value", [1.0, 0.25])),
          sweep("seed", [0, 1, 2]))

Each point is a dict of dotted config keys to values (``{"model.cell": "gru", "seed": 1}``)
and runs in ``WORKDIR/<point_name>/`` (here ``cell=gru,clip_mode=none,clip_value=1.0,seed=1``)
under the single-run workdir contract of :mod:`rnnlm_jax.workdir`. ``WORKDIR/sweep.json`` is
``{"config": <sweep file as given>, "keys": [every key some point sets, in order of first
appearance], "points": [{"name", "overrides"}, ...]}``.

Run it with ``rnnlm-sweep --config configs/sweeps/NAME.py --workdir runs/NAME`` (see
:mod:`rnnlm_jax.sweep_main`). The whole sweep is validated (keys, values, names, existing
``sweep.json`` and point configs) before anything is written. Re-running the command skips
the points whose ``status.json`` says ``finished`` or ``diverged`` (diverging again would be
deterministic) and resumes the others from their checkpoints; a point whose config changed in
a non-resumable key is refused. A finished language-model or whole-sequence point is trained
on (resumed) when its run length changed: re-run the sweep with a larger
``--config.train.num_epochs`` or ``--config.train.max_steps`` (or raise it in the sweep file)
and every such point continues from its checkpoint, as ``rnnlm-train`` would on its directory.
Synthetic-task points stop at their own success or step cap and are never extended.

Execution units: a point is trained alone by :func:`rnnlm_jax.loop.train_and_evaluate`,
except points of a task with a group key (synthetic: equal
:func:`rnnlm_jax.tasks.synthetic.vmap_group_key`), which are trained together by the task's
``train_group`` (one vmapped program), or one by one with ``--no_vmap``. Units are ordered by their first point and dealt round-robin to
``--num_tasks`` shards, so a cluster array job covers the sweep with no coordinator; every
task must be given the same flags (``--no_vmap`` changes the units)::

    #!/bin/bash
    #SBATCH --array=0-3
    rnnlm-sweep --config configs/sweeps/NAME.py --workdir runs/NAME \\
        --task_index=$SLURM_ARRAY_TASK_ID --num_tasks=4

Re-submitting the same array job resumes it (finished points are skipped).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import itertools
import json
import math
import os
import pathlib
import re
import time
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

import ml_collections

from rnnlm_jax import tasks
from rnnlm_jax.workdir import RUN_LENGTH_KEYS, Workdir, flatten

SWEEP_FILE = "sweep.json"
FINAL_STATES = ("finished", "diverged", "failed")
DONE_STATES = ("finished", "diverged")  # skipped on re-runs (diverging again is deterministic)
MAX_NAME_LEN = 200  # longer names are cut and suffixed with a hash of the full name

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._+\-]")


class SweepError(ValueError):
  """A sweep that cannot be expanded or run as asked (bad spec, unknown key, conflicts)."""


class SweepInterrupted(RuntimeError):
  """SIGINT/SIGTERM during a point; its checkpoint was saved. ``result`` holds the counts so
  far. Re-running the same command resumes the sweep."""

  def __init__(self, message: str, result: "SweepResult"):
    super().__init__(message)
    self.result = result


# ----------------------------------------------------------------------------- spec helpers


def sweep(key: str, values: Iterable) -> list[dict]:
  """One axis: ``[{key: v} for v in values]``.

  Args:
    key: a dotted config key, e.g. ``"model.cell"`` or ``"seed"``.
    values: the values, in order (a non-empty iterable; not a string).

  Raises:
    SweepError: malformed key, a string or empty ``values``.
  """
  if not isinstance(key, str) or not _KEY_RE.match(key):
    raise SweepError(f"sweep key {key!r} is not a dotted config key like 'model.cell'")
  if isinstance(values, (str, bytes)):
    raise SweepError(f"sweep({key!r}, {values!r}): values must be a list, not a string "
                     f"(did you mean [{values!r}]?)")
  values = list(values)
  if not values:
    raise SweepError(f"sweep({key!r}, ...): no values")
  return [{key: v} for v in values]


def _merge(dicts: Sequence[Mapping], what: str) -> dict:
  out: dict = {}
  for d in dicts:
    for k, v in d.items():
      if k in out:
        raise SweepError(f"{what}: key {k!r} is set by two of its arguments")
      out[k] = v
  return out


def _as_points(s, what: str) -> list[dict]:
  if isinstance(s, Mapping) or not isinstance(s, (list, tuple)):
    raise SweepError(f"{what}: arguments must be lists of override dicts (from sweep(), "
                     f"product() or zip_()), got {type(s).__name__}")
  for p in s:
    if not isinstance(p, Mapping):
      raise SweepError(f"{what}: a point is a {type(p).__name__}, not a dict of overrides")
  return list(s)


def product(*sweeps: Sequence[Mapping]) -> list[dict]:
  """Cartesian product of sweeps; the last sweep varies fastest (like nested loops).

  ``product(sweep("a", [1, 2]), sweep("b", [3, 4]))`` is
  ``[{a:1,b:3}, {a:1,b:4}, {a:2,b:3}, {a:2,b:4}]``. ``product()`` is ``[{}]`` (one point, the
  base config).

  Raises:
    SweepError: a key set by two arguments.
  """
  lists = [_as_points(s, "product()") for s in sweeps]
  return [_merge(combo, "product()") for combo in itertools.product(*lists)]


def zip_(*sweeps: Sequence[Mapping]) -> list[dict]:
  """Element-wise combination: point ``i`` merges point ``i`` of every sweep.

  ``zip_(sweep("a", [1, 2]), sweep("b", [3, 4]))`` is ``[{a:1,b:3}, {a:2,b:4}]``.

  Raises:
    SweepError: the sweeps differ in length, or a key set by two arguments.
  """
  lists = [_as_points(s, "zip_()") for s in sweeps]
  lengths = [len(s) for s in lists]
  if len(set(lengths)) > 1:
    raise SweepError(f"zip_() needs sweeps of equal length, got lengths {lengths}")
  return [_merge(combo, "zip_()") for combo in zip(*lists)]


# ----------------------------------------------------------------------------- names


def _plain(v: Any) -> Any:
  """NumPy scalars and arrays as Python values (``np.float64(0.5)`` -> ``0.5``)."""
  if type(v).__module__ == "numpy" and hasattr(v, "tolist"):
    return v.tolist()
  if isinstance(v, (list, tuple)):
    return type(v)(_plain(x) for x in v)
  return v


def _fmt_value(v: Any) -> str:
  v = _plain(v)
  if v is None:
    return "none"
  if isinstance(v, bool):
    return "true" if v else "false"
  if isinstance(v, float):
    v = float(v)
    return repr(v) if math.isfinite(v) else str(v)  # repr: shortest round-trip (1e-05, 0.25)
  if isinstance(v, (list, tuple)):
    return "_".join(_fmt_value(x) for x in v) or "empty"
  s = str(v)
  return s if s else "empty"


def _safe(s: str) -> str:
  return _UNSAFE_RE.sub("_", s)


def point_name(overrides: Mapping[str, Any]) -> str:
  """A stable, readable, filesystem-safe name: ``last_key_component=value`` joined by commas,
  in the overrides' order, e.g. ``cell=gru,clip_mode=none,seed=1``.

  Floats are written in their shortest round-trip form (0.25, 1e-05, 1.0); booleans as
  true/false; None as none; sequences joined by ``_``. Characters other than letters, digits
  and ``._+-`` are replaced by ``_``. Where two keys share their last component, both are
  written in full (``model.dropout=...,data.dropout=...``). ``{}`` is named ``base``. Names
  longer than :data:`MAX_NAME_LEN` are cut and suffixed with a hash of the full name.
  """
  if not overrides:
    return "base"
  lasts = [k.rsplit(".", 1)[-1] for k in overrides]
  parts = []
  for key, last in zip(overrides, lasts):
    label = last if lasts.count(last) == 1 else key
    parts.append(f"{_safe(label)}={_safe(_fmt_value(overrides[key]))}")
  name = ",".join(parts)
  if name.startswith("."):
    name = "_" + name[1:]
  if len(name) > MAX_NAME_LEN:
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    name = name[:MAX_NAME_LEN - 11] + "~" + digest
  return name


# ----------------------------------------------------------------------------- configs


def _key_error(key: str, node, prefix: str, part: str) -> SweepError:
  known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
  where = f"'{prefix}'" if prefix else "the config"
  return SweepError(f"unknown config key {key!r}: {where} has no field {part!r}"
                    + (f" (its fields: {known})" if known else "")
                    + "; the keys are listed in rnnlm_jax/config_base.py")


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with each dotted key of ``overrides`` set (``config`` is untouched).

  Raises:
    SweepError: a key the config does not have (the message names it and lists the fields
      beside it), a key naming a group rather than a field, or a value of the wrong type.
  """
  out = copy.deepcopy(config)
  for key, value in overrides.items():
    if not isinstance(key, str) or not _KEY_RE.match(key):
      raise SweepError(f"override key {key!r} is not a dotted config key like 'model.cell'")
    *parents, leaf = key.split(".")
    node, prefix = out, ""
    for part in parents:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise _key_error(key, node, prefix, part)
      node = node[part]
      prefix = f"{prefix}.{part}" if prefix else part
    if not isinstance(node, ml_collections.ConfigDict):
      raise SweepError(f"unknown config key {key!r}: '{prefix}' is a value, not a group")
    if leaf not in node:
      raise _key_error(key, node, prefix, leaf)
    if isinstance(node[leaf], ml_collections.ConfigDict):
      raise SweepError(f"config key {key!r} is a group; sweep its fields ({key}.FIELD)")
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise SweepError(f"cannot set {key!r} to {value!r}: {str(e).splitlines()[0]}") from None
  return out


def import_file(path: str | os.PathLike):
  """Import a Python file (a config or sweep file) by path, as a module.

  Config and experiment files are not a package, so a sweep builds on another file this way::

      base = import_file(pathlib.Path(__file__).resolve().parent / "music_sweep.py")
      c = base.get_config()
  """
  p = pathlib.Path(path).resolve()
  spec = importlib.util.spec_from_file_location(
      "rnnlm_file_" + re.sub(r"\W", "_", str(p.with_suffix(""))), p)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def load_sweep_module(path: str | os.PathLike):
  """Import a sweep file by path; it must define ``get_config()`` and ``get_sweep()``.

  Raises:
    SweepError: the file is missing, fails to import, or lacks one of the functions.
  """
  p = pathlib.Path(path)
  if not p.is_file():
    raise SweepError(f"sweep file {str(path)!r} not found")
  try:
    mod = import_file(p)
  except Exception as e:
    raise SweepError(f"could not load sweep file {str(path)!r}: {type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''}") from None
  for fn in ("get_config", "get_sweep"):
    if not callable(getattr(mod, fn, None)):
      raise SweepError(f"sweep file {str(path)!r} defines no {fn}() (a sweep file defines "
                       "get_config() -> ConfigDict and get_sweep() -> list of override dicts)")
  return mod


@dataclasses.dataclass
class Point:
  """One run of a sweep.

  Attributes:
    index: position in the sweep (0-based).
    name: :func:`point_name` of ``overrides``; also its directory under the sweep workdir.
    overrides: dotted key -> value.
    config: the base config with ``overrides`` applied.
    unit: index of its execution unit (set by :func:`plan`).
    shard: the task that runs it (set by :func:`plan`).
    group_key: ``vmap_group_key`` of a synthetic point trained in a vmapped group, else "".
  """
  index: int
  name: str
  overrides: dict
  config: ml_collections.ConfigDict
  unit: int = -1
  shard: int = -1
  group_key: str = ""


def swept_keys(points: Sequence[Mapping[str, Any]]) -> list[str]:
  """The dotted keys set by any point, in order of first appearance."""
  keys: list[str] = []
  for p in points:
    keys += [k for k in p if k not in keys]
  return keys


def _jsonable(v):
  return json.loads(json.dumps(v))


def expand(base: ml_collections.ConfigDict, overrides: Sequence[Mapping[str, Any]]) -> list[Point]:
  """Validate a whole sweep and build its points (nothing is written).

  Raises:
    SweepError: an empty sweep, a point that is not a dict, a value that is not JSON
      (numbers, strings, booleans, None, lists), two equal points, two points with the same
      name, or an override the config rejects (:func:`apply_overrides`).
  """
  if isinstance(overrides, Mapping) or not isinstance(overrides, (list, tuple)):
    raise SweepError(f"get_sweep() must return a list of override dicts, got "
                     f"{type(overrides).__name__}")
  if not overrides:
    raise SweepError("the sweep has no points")
  points: list[Point] = []
  by_name: dict[str, int] = {}
  seen: dict[str, int] = {}
  for i, ov in enumerate(overrides):
    if not isinstance(ov, Mapping):
      raise SweepError(f"sweep point {i} is a {type(ov).__name__}, not a dict of overrides")
    ov = {k: _plain(v) for k, v in ov.items()}
    try:
      canon = json.dumps(ov, allow_nan=True)
    except (TypeError, ValueError) as e:
      raise SweepError(f"sweep point {i} ({ov!r}): values must be JSON-like (numbers, "
                       f"strings, booleans, None, lists): {e}") from None
    if canon in seen:
      raise SweepError(f"sweep points {seen[canon]} and {i} are equal ({ov!r})")
    seen[canon] = i
    name = point_name(ov)
    if name in by_name:
      raise SweepError(f"sweep points {by_name[name]} ({overrides[by_name[name]]!r}) and {i} "
                       f"({ov!r}) have the same name {name!r}; make the values distinct")
    by_name[name] = i
    try:
      config = apply_overrides(base, ov)
    except SweepError as e:
      raise SweepError(f"sweep point {i} ({name}): {e}") from None
    points.append(Point(index=i, name=name, overrides=ov, config=config))
  return points


# ----------------------------------------------------------------------------- plan


def plan(points: Sequence[Point], num_tasks: int = 1, vmap: bool = True) -> list[list[Point]]:
  """Group points into execution units and deal the units to ``num_tasks`` shards.

  A point is a unit of its own, except that points of a task with a ``group_key``
  (synthetic: :func:`rnnlm_jax.tasks.synthetic.vmap_group_key`) and equal keys form one unit
  when ``vmap``. Units are ordered by their first point's index; unit ``u`` goes to shard
  ``u % num_tasks``. Sets ``unit``, ``shard`` and ``group_key`` on every point.

  Returns:
    The units, in order; every point is in exactly one.
  """
  if num_tasks < 1:
    raise SweepError(f"--num_tasks must be >= 1, got {num_tasks}")
  units: list[list[Point]] = []
  by_key: dict[str, int] = {}
  for p in sorted(points, key=lambda p: p.index):
    key = ""
    group_key = tasks.get_task(p.config).group_key
    if vmap and group_key is not None:
      key = str(group_key(p.config))
    p.group_key = key
    if key and key in by_key:
      units[by_key[key]].append(p)
    else:
      if key:
        by_key[key] = len(units)
      units.append([p])
  for u, unit in enumerate(units):
    for p in unit:
      p.unit, p.shard = u, u % num_tasks
  return units


def shard(units: Sequence[Sequence[Point]], task_index: int, num_tasks: int) -> list:
  """The units task ``task_index`` of ``num_tasks`` runs (round-robin: ``units[i::n]``).

  Raises:
    SweepError: unless ``0 <= task_index < num_tasks``.
  """
  if num_tasks < 1 or not 0 <= task_index < num_tasks:
    raise SweepError(f"need 0 <= --task_index < --num_tasks, got --task_index={task_index} "
                     f"--num_tasks={num_tasks}")
  return list(units[task_index::num_tasks])


def select(units: Sequence[Sequence[Point]], names: Sequence[str] | None) -> list:
  """Only the points named in ``names`` (``--point``); all of ``units`` when it is empty.

  Units left without a point are dropped; a vmapped group keeps its named points.

  Raises:
    SweepError: a name that is no point of the sweep.
  """
  if not names:
    return list(units)
  wanted, known = set(names), {p.name for u in units for p in u}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise SweepError(f"--point={unknown[0]} is not a point of this task's share of the sweep "
                     f"(--dry_run lists the names; e.g. {sorted(known)[0]})")
  chosen = [[p for p in u if p.name in wanted] for u in units]
  return [u for u in chosen if u]


# ----------------------------------------------------------------------------- sweep.json


def sweep_record(config_path: str, points: Sequence[Point]) -> dict:
  """The content of ``sweep.json``."""
  return {"config": str(config_path), "keys": swept_keys([p.overrides for p in points]),
          "points": [{"name": p.name, "overrides": _jsonable(p.overrides)} for p in points]}


def check_workdir(workdir: str | os.PathLike, record: dict, points: Sequence[Point]) -> None:
  """Check, without writing, that the sweep may use ``workdir``: an existing ``sweep.json``
  must list the same points, and every existing point directory's ``config.json`` must agree
  with the point's config (resumable keys such as ``train.max_steps`` may differ).

  Raises:
    SweepError: the sweep or a point's config conflicts with what is on disk.
  """
  path = pathlib.Path(workdir) / SWEEP_FILE
  if path.exists():
    try:
      old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      raise SweepError(f"{path} is unreadable ({e}); move it away to start over") from None
    old_points = old.get("points")
    if old_points != record["points"]:
      old_names = [p.get("name") for p in old_points or []]
      new_names = [p["name"] for p in record["points"]]
      if old_names != new_names:
        extra = sorted(set(new_names) - set(old_names))[:3]
        missing = sorted(set(old_names) - set(new_names))[:3]
        detail = (f"{len(old_names)} points before, {len(new_names)} now"
                  + (f"; new: {extra}" if extra else "")
                  + (f"; gone: {missing}" if missing else ""))
      else:
        detail = "the same names with different override values"
      raise SweepError(f"{path} was written for a different sweep ({old.get('config')!r}: "
                       f"{detail}); use a new --workdir, or restore the sweep to resume it")
  for p in points:
    wd = Workdir(pathlib.Path(workdir) / p.name)
    try:
      wd.check_config(p.config.to_dict())
    except ValueError as e:
      raise SweepError(f"point {p.name}: {e}") from None


def write_sweep_json(workdir: str | os.PathLike, record: dict) -> None:
  """Write ``sweep.json`` unless it exists (check first with :func:`check_workdir`).

  Safe when several tasks of an array job start at once: each writes the same content to a
  private temporary file and renames it into place atomically.
  """
  d = pathlib.Path(workdir)
  d.mkdir(parents=True, exist_ok=True)
  path = d / SWEEP_FILE
  if path.exists():
    return
  tmp = d / f".{SWEEP_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
  tmp.write_text(json.dumps(record, indent=2) + "\n")
  os.replace(tmp, path)


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass
class SweepResult:
  """What a task of a sweep did.

  Attributes:
    states: point name -> final state (finished | diverged | failed) of this task's points.
    skipped: names of points already finished or diverged before this run.
  """
  states: dict[str, str] = dataclasses.field(default_factory=dict)
  skipped: list[str] = dataclasses.field(default_factory=list)

  def counts(self) -> dict[str, int]:
    out = {s: 0 for s in FINAL_STATES}
    for s in self.states.values():
      out[s] = out.get(s, 0) + 1
    return out

  @property
  def exit_code(self) -> int:
    """0 if every point finished or diverged, 1 if any failed."""
    return 0 if all(s in DONE_STATES for s in self.states.values()) else 1

  def summary(self) -> str:
    c = self.counts()
    parts = [f"{k} {v}" for k, v in c.items()]
    return (f"{len(self.states)} points: " + ", ".join(parts)
            + (f" ({len(self.skipped)} already done, skipped)" if self.skipped else ""))


def _first_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {e}".splitlines()[0]


def _settle_status(wd: Workdir, before: dict | None, error: BaseException | None,
                   diverged: bool, returned: Mapping | None = None) -> dict:
  """Make sure ``wd`` ends with a final status after a training call; return it.

  Kept as written by the trainer if final and (when the call raised) rewritten by this call;
  otherwise a status the trainer returned, else ``failed`` (``diverged`` for a divergence
  exception) with the reason.
  """
  status = wd.read_status()
  state = (status or {}).get("state")
  fresh = status is not None and status != before
  if state in FINAL_STATES and (error is None or fresh):
    return status
  prev = status or before or {}
  step, epoch = prev.get("step", 0), prev.get("epoch", 0.0)
  if error is None and returned and returned.get("state") in FINAL_STATES:
    extra = {k: v for k, v in returned.items()
             if k not in ("state", "step", "epoch", "reason", "time")}
    wd.path.mkdir(parents=True, exist_ok=True)
    wd.write_status(returned["state"], returned.get("step", step), returned.get("epoch", epoch),
                    returned.get("reason", ""), **extra)
    return wd.read_status()
  if error is not None:
    new_state, reason = ("diverged" if diverged else "failed"), _first_line(error)
  else:
    new_state = "failed"
    reason = f"the trainer returned without a final status (status.json state: {state})"
  wd.path.mkdir(parents=True, exist_ok=True)
  wd.write_status(new_state, step, epoch, reason)
  return wd.read_status()


def _run_lengthened(path: pathlib.Path, config, status: Mapping) -> bool:
  """A finished language-model or whole-sequence point whose run length (``train.num_epochs``
  / ``train.max_steps``) is now set differently: it is trained on (resumed) rather than
  skipped, like ``rnnlm-train`` on a finished workdir. Synthetic points stop at their own
  success or cap and are always skipped once ended."""
  if status.get("state") != "finished" or tasks.get_task(config).group_key is not None:
    return False
  try:
    old = flatten(Workdir(path).read_config())
  except (OSError, ValueError):
    return False
  new = flatten(config.to_dict())
  return any(k in old and old[k] != new.get(k) for k in RUN_LENGTH_KEYS)


def run_sweep(units: Sequence[Sequence[Point]], workdir: str | os.PathLike, *,
              vmap: bool = True, out: Callable[[str], None] | None = None) -> SweepResult:
  """Run the given execution units (this task's share, see :func:`plan` and :func:`shard`).

  Points already ``finished`` or ``diverged`` are skipped, unless a finished language-model
  or whole-sequence point's run length (``train.num_epochs`` / ``train.max_steps``) changed
  (``--config.train.num_epochs=N`` trains a whole sweep on); the others are trained (resuming
  from their checkpoints). A point that diverges or fails is recorded in its ``status.json``
  (state, step, reason; written here when the trainer did not) and the sweep goes on.

  Args:
    units: lists of points; language-model units hold one point.
    workdir: the sweep directory; point ``p`` runs in ``workdir/p.name``.
    vmap: passed to the task's ``train_group`` (synthetic).
    out: progress printer (default: print to stdout, flushed).

  Raises:
    SweepInterrupted: SIGINT/SIGTERM (``train.Interrupted``) or KeyboardInterrupt; the
      interrupted points are left resumable and the remaining ones are not started.
  """
  out = out or (lambda s: print(s, flush=True))
  root = pathlib.Path(workdir)
  result = SweepResult()
  total = sum(len(u) for u in units)
  done = 0
  for unit in units:
    todo = []
    for p in unit:
      status = Workdir(root / p.name).read_status()
      if status and status.get("state") in DONE_STATES and not _run_lengthened(
          root / p.name, p.config, status):
        done += 1
        result.states[p.name] = status["state"]
        result.skipped.append(p.name)
        out(f"[sweep {done}/{total}] skip {p.name}: already {status['state']} "
            f"(step {status.get('step')})")
      else:
        todo.append(p)
    if not todo:
      continue
    from rnnlm_jax import loop  # heavy (jax): imported once there is work
    task = tasks.get_task(todo[0].config)
    grouped = task.train_group is not None
    befores = [Workdir(root / p.name).read_status() for p in todo]
    for k, p in enumerate(todo):
      group = f" (group of {len(todo)})" if grouped and len(todo) > 1 else ""
      out(f"[sweep {done + k + 1}/{total}] start {p.name}{group}")
    t0 = time.perf_counter()
    error: BaseException | None = None
    returned: list = [None] * len(todo)
    try:
      if grouped:
        returned = list(task.train_group([p.config for p in todo],
                                         [str(root / p.name) for p in todo],
                                         vmap="auto" if vmap else False))
        returned += [None] * (len(todo) - len(returned))
      else:
        loop.train_and_evaluate(todo[0].config, str(root / todo[0].name))
    except BaseException as e:  # noqa: BLE001  recorded below; interrupts re-raised after
      error = e
    elapsed = time.perf_counter() - t0
    interrupted = isinstance(error, (KeyboardInterrupt, loop.Interrupted))
    diverged = isinstance(error, loop.Diverged)
    for p, before, ret in zip(todo, befores, returned):
      wd = Workdir(root / p.name)
      status = _settle_status(wd, before, error, diverged,
                              ret if isinstance(ret, Mapping) else None)
      done += 1
      result.states[p.name] = status["state"]
      reason = f": {status['reason']}" if status.get("reason") else ""
      out(f"[sweep {done}/{total}] {status['state']} {p.name} at step {status.get('step')} "
          f"in {elapsed:.1f} s{reason}")
    if interrupted:
      raise SweepInterrupted(f"sweep interrupted during {', '.join(p.name for p in todo)} "
                             f"({_first_line(error)})", result)
  return result
