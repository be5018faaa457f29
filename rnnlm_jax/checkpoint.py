"""Checkpoints with orbax: the latest N states, plus the best-validation one, each verified.

``workdir/checkpoints/latest/<step>/`` keeps the last ``keep`` states (for resuming);
``workdir/checkpoints/best/<step>/`` keeps the state with the best validation metric (for the
final test). Each checkpoint holds the train state pytree (``state``) and a JSON dict
(``meta``: loop bookkeeping such as the best validation value and the number of metric events
written so far). Orbax writes into a temporary directory and renames it when complete, so a
run killed mid-save leaves the previous checkpoint intact.

**Integrity.** Before a checkpoint is saved, a manifest with the SHA-256 digest of its
contents (every array's bytes, dtype and shape, and the meta JSON) is written to
``checkpoints/manifests/<latest|best>-<step>.json`` (durably, before the save starts, so a
committed checkpoint never lacks its manifest). A restore recomputes the digest of what it
read: a checkpoint that cannot be read or does not match is moved to
``checkpoints/corrupt/`` with a warning naming it, and the next older one is tried; if none
is usable, :class:`CheckpointError` says so and how to start over. Checkpoints written before
manifests existed are restored unverified (a read error still falls back).

**Several processes** (``jax.distributed``): every process calls every save and restore
(orbax writes each array's shards from the processes that hold them, process 0 the metadata);
the replicated leaves are then not fully addressable in any one process, so no digest is
computed: multi-process checkpoints have no manifest and are restored unverified (a read error
still falls back), and a manifest of an earlier single-process save is not checked either.
Only process 0 writes or removes manifests and moves bad checkpoints aside.

**Idempotent saves.** Saving a step that already exists (a run killed after one of its saves
at that step committed, re-run from an older checkpoint) replaces it, so no order of kills
can wedge a run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import shutil
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from rnnlm_jax.workdir import atomic_write_text

log = logging.getLogger("rnnlm_jax")


class CheckpointError(RuntimeError):
  """No usable checkpoint where one is needed (all of them failed verification)."""


def state_digest(state, meta: dict) -> str | None:
  """SHA-256 over every leaf of ``state`` (its path, shape and values) and ``meta`` (as JSON);
  ``None`` if a leaf is not fully addressable here (multi-process: not verifiable).

  Values are hashed as int64 (integers, booleans) or float64 (floats, bfloat16 too), exact
  widenings: a leaf restored into a template whose leaf is a Python scalar (e.g.
  ``TrainState.step`` of a fresh state) comes back as one, with the same value.
  """
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if isinstance(leaf, jax.Array):
      if not leaf.is_fully_addressable:
        return None
      if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    arr = np.asarray(jax.device_get(leaf))
    with np.errstate(invalid="ignore"):  # a damaged checkpoint may hold signalling NaNs
      arr = arr.astype(np.int64 if arr.dtype.kind in "iub" else np.float64, copy=False)
    h.update(f"{jax.tree_util.keystr(path)}|{arr.shape}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
  h.update(json.dumps(meta, sort_keys=True, default=float).encode())
  return h.hexdigest()


class Checkpointer:
  """Two orbax ``CheckpointManager``s, ``latest`` and ``best``, with verified restores."""

  def __init__(self, directory: pathlib.Path, keep: int = 2, async_save: bool = True):
    self.directory = pathlib.Path(directory).absolute()
    # Each manager its own barrier names (several processes): orbax names a save's barriers
    # after the step's directory, the same for latest/40 and best/40.
    make = lambda name, n: ocp.CheckpointManager(
        self.directory / name,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=n, create=True, enable_async_checkpointing=async_save,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix=name)))
    self.latest = make("latest", max(1, int(keep)))
    self.best = make("best", 1)
    self.manifests = self.directory / "manifests"

  def _name(self, manager) -> str:
    return "latest" if manager is self.latest else "best"

  def _manifest(self, manager, step: int) -> pathlib.Path:
    return self.manifests / f"{self._name(manager)}-{int(step)}.json"

  def _save(self, manager, step, state, meta):
    step = int(step)
    digest = state_digest(state, meta)
    manager.wait_until_finished()  # the previous save is committed before this one starts
    if step in manager.all_steps():  # a save of this step committed before a crash: redo it
      manager.delete(step)
    self._prune_manifests(manager)
    if digest is not None and jax.process_index() == 0:
      self.manifests.mkdir(parents=True, exist_ok=True)
      atomic_write_text(self._manifest(manager, step),
                        json.dumps({"step": step, "sha256": digest}) + "\n")
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               meta=ocp.args.JsonSave(meta)), force=True)

  def _prune_manifests(self, manager) -> None:
    """Remove the manifests of steps orbax no longer keeps (process 0 only)."""
    if jax.process_index() != 0:
      return
    kept = set(manager.all_steps())
    for f in self.manifests.glob(f"{self._name(manager)}-*.json"):
      try:
        if int(f.stem.rsplit("-", 1)[1]) not in kept:
          f.unlink(missing_ok=True)
      except ValueError:
        continue

  def _restore_step(self, manager, step, abstract_state):
    restore = lambda target: manager.restore(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    try:
      out = restore(abstract_state)
    except Exception:  # noqa: BLE001  a checkpoint saved before clipping joined the chain?
      legacy = _without_clip_state(abstract_state)
      if legacy is None:
        raise
      out = restore(legacy)
      return _with_clip_state(out.state), out.meta, out.state
    return out.state, out.meta, out.state

  def _restore_verified(self, manager, abstract_state):
    """``(state, meta)`` of the newest checkpoint of ``manager`` that reads and verifies;
    unusable ones are moved aside (with a warning). ``None`` if there is none at all."""
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
      return None
    skipped = []
    for step in steps:
      problem = None
      try:
        state, meta, as_saved = self._restore_step(manager, step, abstract_state)
      except Exception as e:  # noqa: BLE001  unreadable: truncated, missing metadata, ...
        first = (str(e).splitlines() or [""])[0][:200]
        problem = f"unreadable ({type(e).__name__}: {first})"
      else:
        manifest = self._manifest(manager, step)
        if manifest.is_file():
          expected = json.loads(manifest.read_text())["sha256"]
          digest = state_digest(as_saved, meta)  # None: several processes, unverifiable
          if digest is not None and digest != expected:
            problem = "its contents do not match its manifest's SHA-256"
      if problem is None:
        if skipped:
          manager.reload()
        return state, meta
      where = f"checkpoints/{self._name(manager)}/{step}"
      moved = self._move_aside(manager, step)
      log.warning("checkpoint %s skipped: %s (moved to %s); trying an older one", where,
                  problem, moved)
      skipped.append(f"{where} ({problem})")
    raise CheckpointError(
        f"no usable checkpoint in {self.directory / self._name(manager)}: "
        f"{'; '.join(skipped)}; to start over, move the workdir aside and re-run")

  def _move_aside(self, manager, step) -> str:
    """Move a bad checkpoint out of orbax's sight (kept for inspection, never deleted; by
    process 0 alone, the others only forget it)."""
    if jax.process_index() != 0:
      manager.reload()
      return "checkpoints/corrupt/ (by process 0)"
    dest = self.directory / "corrupt" / f"{self._name(manager)}-{int(step)}-{int(time.time())}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(pathlib.Path(manager.directory) / str(int(step))), str(dest))
    self._manifest(manager, step).unlink(missing_ok=True)
    manager.reload()
    return str(dest.relative_to(self.directory.parent))

  def save_latest(self, step: int, state, meta: dict) -> None:
    """Save (asynchronously) the state for resuming."""
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict) -> None:
    """Save the state as the best-validation checkpoint (replacing the previous one)."""
    self._save(self.best, step, state, meta)

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def best_step(self) -> int | None:
    return self.best.latest_step()

  def restore_latest(self, abstract_state):
    """``(state, meta)`` of the newest latest checkpoint that verifies, or ``None`` if there
    is none. Raises :class:`CheckpointError` if there are some but none verifies."""
    return self._restore_verified(self.latest, abstract_state)

  def restore_best(self, abstract_state):
    """``(state, meta)`` of the best-validation checkpoint (verified), or ``None``."""
    return self._restore_verified(self.best, abstract_state)

  def wait(self) -> None:
    """Block until pending asynchronous saves are on disk."""
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    for manager in (self.latest, self.best):
      self._prune_manifests(manager)
    self.latest.close()
    self.best.close()


def has_checkpoint(checkpoint_dir: pathlib.Path, which: str = "latest") -> bool:
  """Whether ``checkpoint_dir/<which>`` (``latest`` or ``best``) holds any step directory, without
  opening it (verification happens on restore)."""
  kind_dir = pathlib.Path(checkpoint_dir) / which
  return kind_dir.is_dir() and any(p.name.isdigit() for p in kind_dir.iterdir())


def restore_for_evaluation(checkpoint_dir: pathlib.Path, abstract_state, which: str = "best"):
  """The train state of the ``best`` (best-validation) or ``latest`` checkpoint under
  ``checkpoint_dir`` (verified, as :meth:`Checkpointer.restore_best` / ``restore_latest``), for
  read-only use: ``rnnlm-eval``, ``rnnlm-sample``. ``abstract_state``: the train state's
  structure (arrays or ``jax.ShapeDtypeStruct``s).

  Raises ``FileNotFoundError`` when there is no such checkpoint yet (checked before anything
  is opened, so nothing is written), :class:`CheckpointError` when none verifies, and orbax's
  own error when the checkpoint does not fit ``abstract_state``."""
  if which not in ("best", "latest"):
    raise ValueError(f"checkpoint must be 'best' or 'latest', got {which!r}")
  if not has_checkpoint(checkpoint_dir, which):
    raise FileNotFoundError(f"no {which} checkpoint in {checkpoint_dir}; train first"
                            + (" (or use --checkpoint latest)" if which == "best" else ""))
  ckpt = Checkpointer(checkpoint_dir, async_save=False)
  try:
    restored = (ckpt.restore_best if which == "best" else ckpt.restore_latest)(abstract_state)
  finally:
    ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"no {which} checkpoint in {checkpoint_dir}; train first")
  return restored[0]


# Checkpoints saved before gradient clipping became the first link of the optimizer's chain
# (rnnlm_jax.optim.clip_by) hold the optimizer's state alone; they are restored into that
# layout and given a zero ClipState (it holds the last update's statistics only).


def _without_clip_state(state):
  """``state`` (a train state, or a synthetic member's dict) with its optimizer state in the
  layout before :func:`rnnlm_jax.optim.clip_by`; ``None`` if it has no clipping link."""
  from rnnlm_jax import optim
  opt = state.get("opt_state") if isinstance(state, dict) else getattr(state, "opt_state", None)
  if not (isinstance(opt, tuple) and len(opt) == 2 and isinstance(opt[0], optim.ClipState)):
    return None
  inner = optim.strip_clip_state(opt)
  return {**state, "opt_state": inner} if isinstance(state, dict) else state.replace(
      opt_state=inner)


def _with_clip_state(state):
  from rnnlm_jax import optim
  if isinstance(state, dict):
    return {**state, "opt_state": optim.add_clip_state(state["opt_state"])}
  return state.replace(opt_state=optim.add_clip_state(state.opt_state))
