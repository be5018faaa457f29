"""Checkpoints with orbax: the latest N states, plus the best-validation one.

``workdir/checkpoints/latest/<step>/`` keeps the last ``keep`` states (for resuming);
``workdir/checkpoints/best/<step>/`` keeps the state with the lowest validation loss (for the
final test). Each checkpoint holds the train state pytree (``state``) and a JSON dict
(``meta``: loop bookkeeping such as the best validation loss and the number of metric events
written so far). Orbax writes into a temporary directory and renames it when complete, so a
run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import pathlib

import orbax.checkpoint as ocp


class Checkpointer:
  """Two orbax ``CheckpointManager``s: ``latest`` and ``best``."""

  def __init__(self, directory: pathlib.Path, keep: int = 2, async_save: bool = True):
    directory = pathlib.Path(directory).absolute()
    make = lambda name, n: ocp.CheckpointManager(
        directory / name,
        options=ocp.CheckpointManagerOptions(max_to_keep=n, create=True,
                                             enable_async_checkpointing=async_save))
    self.latest = make("latest", max(1, int(keep)))
    self.best = make("best", 1)

  @staticmethod
  def _save(manager, step, state, meta):
    manager.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    meta=ocp.args.JsonSave(meta)), force=True)

  @staticmethod
  def _restore(manager, step, abstract_state):
    restore = lambda target: manager.restore(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    try:
      out = restore(abstract_state)
    except Exception:  # noqa: BLE001  a checkpoint saved before clipping joined the chain?
      legacy = _without_clip_state(abstract_state)
      if legacy is None:
        raise
      out = restore(legacy)
      return _with_clip_state(out.state), out.meta
    return out.state, out.meta

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
    """``(state, meta)`` of the latest checkpoint, or ``None`` if there is none."""
    step = self.latest.latest_step()
    return None if step is None else self._restore(self.latest, step, abstract_state)

  def restore_best(self, abstract_state):
    """``(state, meta)`` of the best-validation checkpoint, or ``None``."""
    step = self.best.latest_step()
    return None if step is None else self._restore(self.best, step, abstract_state)

  def wait(self) -> None:
    """Block until pending asynchronous saves are on disk."""
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self.latest.close()
    self.best.close()


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
