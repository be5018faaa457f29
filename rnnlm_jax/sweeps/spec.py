"""What a sweep is: the sweep-file vocabulary, point names, overrides, expansion.

Pure: no JAX and no workdir (nothing is read or written but the sweep file imported). A
sweep file (``configs/sweeps/NAME.py``) defines the base config and the points::

    from rnnlm_jax.config_base import base_config
    from rnnlm_jax.sweeps.spec import product, sweep, zip_

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
named by :func:`point_name` (here ``cell=gru,clip_mode=none,clip_value=1.0,seed=1``, also its
directory under the sweep workdir, see :mod:`rnnlm_jax.sweeps.run`). :func:`expand` validates
the whole sweep (keys, values, names) and builds its :class:`Point` s.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import math
import os
import pathlib
import re
from typing import Any, Iterable, Mapping, Sequence

# The keys whose values are replicates of one setting, not settings: seeds and the folds of
# ``rnnlm-sweep --cv`` (successive halving judges them together, reports aggregate them).
REPLICATE_KEYS = ("seed", "data.cv_fold")

import ml_collections

MAX_NAME_LEN = 200  # longer names are cut and suffixed with a hash of the full name

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._+\-]")


class SweepError(ValueError):
  """A sweep that cannot be expanded or run as asked (bad spec, unknown key, conflicts)."""


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
    unit: index of its execution unit (set by :func:`rnnlm_jax.sweeps.plan.plan`).
    shard: the task that runs it (set by :func:`rnnlm_jax.sweeps.plan.plan`).
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
  from rnnlm_jax import tasks  # pylint: disable=import-outside-toplevel  (spec stays light)
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
      config = tasks.migrate_config_dict(apply_overrides(base, ov))  # older spellings read
    except SweepError as e:
      raise SweepError(f"sweep point {i} ({name}): {e}") from None
    points.append(Point(index=i, name=name, overrides=ov, config=config))
  return points
