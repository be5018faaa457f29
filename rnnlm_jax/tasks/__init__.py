"""The task registry: a config's ``task`` key names what is trained, and this maps it to the code.

    lm         language models on a token stream, truncated BPTT (tasks/lm.py)
    music      next-frame prediction on polyphonic piano rolls (tasks/music.py)
    classify   text classification (tasks/classify.py)
    synthetic  Pascanu et al. 2013's long-range problems, vmapped groups (tasks/synthetic.py)

Every entry point (``rnnlm-train``, ``rnnlm-eval``, ``rnnlm-sweep``, ``rnnlm-report``,
``rnnlm-sample``, ``rnnlm-export-embeddings``) asks :func:`task_name` / :func:`get_task`; no other
code decides what kind of run a config is.

Older spellings are still read: a config without a ``task`` key is a language model; a
top-level ``kind`` (``music`` / ``classify``) is read as ``task`` with a one-line deprecation
note; a ``task`` sub-config (``task.name``, ``task.length``, ...) is a synthetic run whose
fields moved to ``synthetic.*`` (:data:`SYNTHETIC_MOVED`, :func:`migrate_config_dict`).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any, Callable, Mapping

log = logging.getLogger("rnnlm_jax")

# task name -> the module that defines its TASK.
REGISTRY = {
    "lm": "rnnlm_jax.tasks.lm",
    "music": "rnnlm_jax.tasks.music",
    "classify": "rnnlm_jax.tasks.classify",
    "synthetic": "rnnlm_jax.tasks.synthetic",
}


@dataclasses.dataclass(frozen=True)
class Task:
  """What the entry points need of a task.

  Attributes:
    name: the registry name (the config's ``task`` value).
    validate_config: ``(config) -> None``; raises ``ValueError`` (one line, with the fix).
    make_run: ``(config, workdir) -> loop.Run``: loads the data and builds the jitted step;
      writes nothing. ``None`` for tasks with their own loop.
    evaluate_workdir: ``(workdir, split, checkpoint, text=None) -> dict`` (``rnnlm-eval``).
    select_metric: the validation metric that picks the best checkpoint (per config for
      tasks whose configs choose it: a callable ``(config) -> str``).
    select_mode: ``"min"`` or ``"max"`` (or a callable of the config).
    train_and_evaluate: for tasks that run their own loop (synthetic groups): ``(config,
      workdir) -> dict``; ``None`` means :func:`rnnlm_jax.loop.train_and_evaluate`'s loop.
    group_key: ``(config) -> str``: configs with equal keys may be trained together by
      ``train_group`` (one vmapped program); ``None``: every run alone.
    train_group: ``(configs, workdirs, vmap) -> [status]``.
    has_text: whether the task models text that ``rnnlm-sample`` can continue.
  """

  name: str
  validate_config: Callable[[Any], None]
  make_run: Callable[[Any, str], Any] | None
  evaluate_workdir: Callable[..., dict]
  select_metric: str | Callable[[Any], str] = "loss"
  select_mode: str | Callable[[Any], str] = "min"
  train_and_evaluate: Callable[[Any, str], dict] | None = None
  group_key: Callable[[Any], str] | None = None
  train_group: Callable[..., list] | None = None
  has_text: bool = False


_warned: set[str] = set()


def _deprecated(what: str, message: str) -> None:
  """Log ``message`` once per process for ``what``."""
  if what not in _warned:
    _warned.add(what)
    log.warning("%s", message)


def _get(config: Any, key: str):
  if isinstance(config, Mapping):
    return config.get(key)
  return config.get(key) if hasattr(config, "get") else getattr(config, key, None)


def task_name(config: Any) -> str:
  """The task of a config (a ``ConfigDict``, a workdir's ``config.json`` dict, or that dict
  flattened to dotted keys).

  Raises:
    ValueError: an unknown task name.
  """
  task = _get(config, "task")
  if isinstance(task, str):
    name = task
  elif task is not None and _get(task, "name") is not None:
    name = "synthetic"  # the former synthetic sub-config (task.name, task.length, ...)
    _deprecated("task.name", "config key `task.name` (a `task` sub-config) is deprecated: write "
                "`task = 'synthetic'` and `synthetic.problem`, `synthetic.length`, ...")
  elif _get(config, "kind") is not None:
    name = str(_get(config, "kind"))
    _deprecated(name, f"config key `kind` is deprecated: write `task = {name!r}` "
                "(rnnlm_jax/tasks)")
  elif isinstance(config, Mapping) and any(str(k) in SYNTHETIC_MOVED for k in config):
    name = "synthetic"  # a flattened config.json of a former synthetic run
  else:
    name = "lm"
  if name not in REGISTRY:
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(REGISTRY)}")
  return name


def get_task(config_or_name: Any) -> Task:
  """The :class:`Task` of a config, a ``config.json`` dict or a task name."""
  name = config_or_name if isinstance(config_or_name, str) else task_name(config_or_name)
  if name not in REGISTRY:
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(REGISTRY)}")
  return importlib.import_module(REGISTRY[name]).TASK


# Keys renamed so that one name has one meaning, per task: {task: {old dotted key: new}}.
# An old workdir's config.json is read with the new names; a config that sets an old name is
# refused with a line naming the new one (the task's validate_config).
RENAMED_KEYS = {
    "classify": {
        # plain dropout on the embedded tokens (the LM's model.embed_dropout drops whole words)
        "model.embed_dropout": "model.input_dropout",
        # a standard deviation (model.init_scale is a uniform range)
        "model.embed_init_scale": "model.embed_init_std",
    },
}


# The synthetic problem's fields, once a ``task`` sub-config: {old dotted key: new}.
SYNTHETIC_MOVED = {
    "task.name": "synthetic.problem",
    "task.length": "synthetic.length",
    "task.test_size": "synthetic.test_size",
    "task.success_error_rate": "synthetic.success_error_rate",
}


def migrate_flat_config(flat: dict) -> dict:
  """A flattened config dict in today's spelling: ``kind`` becomes ``task``, no task key
  becomes ``task: "lm"``, the former synthetic sub-config ``task.*`` becomes ``task:
  "synthetic"`` with :data:`SYNTHETIC_MOVED`, the task's :data:`RENAMED_KEYS` get their new
  names, ``model.remat`` True/False becomes ``"step"``/``"none"``. So a workdir written before
  these changes compares equal to the same config today."""
  flat = dict(flat)
  if "kind" in flat:
    flat["task"] = flat.pop("kind")
  elif any(k in SYNTHETIC_MOVED for k in flat):
    for old, new in SYNTHETIC_MOVED.items():
      if old in flat:
        flat[new] = flat.pop(old)
    flat["task"] = "synthetic"
  elif "task" not in flat:
    flat["task"] = "lm"
  for old, new in RENAMED_KEYS.get(flat.get("task"), {}).items():
    if old in flat:
      flat[new] = flat.pop(old)
  if isinstance(flat.get("model.remat"), bool):  # once a bool or a name; now a name
    flat["model.remat"] = "step" if flat["model.remat"] else "none"
  return flat


def migrate_config(config: dict) -> dict:
  """A nested config dict (a workdir's ``config.json``) in today's spelling (see
  :func:`migrate_flat_config`)."""
  from rnnlm_jax.workdir import flatten
  out: dict = {}
  for key, value in migrate_flat_config(flatten(config)).items():
    node = out
    *parents, leaf = key.split(".")
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return out


def migrate_config_dict(config):
  """A ``ConfigDict`` in today's spelling: a config file written for the former synthetic
  sub-config (``c.task.name = ...``) is read as ``task = "synthetic"`` with ``synthetic.*``
  (with a one-line deprecation note, :func:`task_name`); any other config is returned as it is.
  """
  task = _get(config, "task")
  if task is None or isinstance(task, str):
    return config
  import ml_collections
  task_name(config)  # the deprecation note
  return ml_collections.ConfigDict(migrate_config(config.to_dict()))


def refuse_renamed_keys(config: Any, task: str) -> None:
  """Raise ``ValueError`` naming the new key if ``config`` sets a renamed one."""
  for old, new in RENAMED_KEYS.get(task, {}).items():
    group, leaf = old.split(".")
    node = _get(config, group)
    if node is not None and leaf in node:
      raise ValueError(f"{old} was renamed {new} for the {task} task; set {new} instead")


def validate_config(config: Any) -> None:
  """Check a config with its task's validation (``ValueError``: one line, with the fix)."""
  get_task(config).validate_config(config)
