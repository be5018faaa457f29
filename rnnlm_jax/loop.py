"""The one training loop: every task's run bookkeeping, written once.

    config --(rnnlm_jax.tasks: registry by the `task` key)--> task --make_run--> run
    run --(this module: train_and_evaluate)--> workdir (config.json, metrics.jsonl, checkpoints/,
                                                        status.json, provenance.json)

A *task* (``rnnlm_jax/tasks/<name>.py``) knows its data, model and loss and builds a *run* for
a config (:class:`Run`: the data loaded, the jitted step made). This loop owns what is the
same for every task:

* **resume**: the latest checkpoint holds the train state and the loop's bookkeeping
  (``meta``: the best validation value, the number of ``metrics.jsonl`` lines written, ...);
  re-running on a workdir restores it and truncates the metrics to that line count, so an
  interrupted run ends with exactly the parameters and events of an uninterrupted one;
* **signals**: SIGINT/SIGTERM finish the current step, save, and raise :class:`Interrupted`;
* **several processes** (``jax.distributed``, language models): every process runs this loop
  on the same global step; process 0 alone writes the workdir's files (lock, config, data,
  status, provenance, metrics, TensorBoard, vocabulary, samples), every process takes part in
  the checkpoint saves and restores, and a signal to any one process stops all of them at the
  same step (:func:`stop_signal`, all-reduced every step);
* **divergence**: a non-finite loss or gradient norm writes the event, status ``diverged``
  and raises :class:`Diverged`;
* **train events** (one schema for every task, see :func:`train_event`) every
  ``train.log_every`` steps, at checkpoints and at the end of an epoch;
* **validation** after every epoch (and at the last step): the run's metrics on ``valid``;
  the best one by the run's ``select_metric`` (``select_mode`` min or max) is kept as the
  ``best`` checkpoint; ``train.patience`` validations without improvement stop early;
* **checkpoints** every ``train.checkpoint_every_steps`` and after every validation;
* the **final evaluation** of the best-valid checkpoint on the run's ``final_splits``;
* **status** and **provenance** (:meth:`rnnlm_jax.workdir.Workdir.run_recorded`), the
  progress bar and the log lines.

The position in the data is a pure function of the step (``epoch, i = divmod(step,
steps_per_epoch)``), so nothing but the state and ``meta`` needs saving.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np
from flax.training import train_state
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import optim
from rnnlm_jax import parallel
from rnnlm_jax.workdir import MetricWriter, Workdir, WorkdirBusy, WorkdirError

log = logging.getLogger("rnnlm_jax")


class Diverged(RuntimeError):
  """The training loss or gradient, or an evaluation, became NaN or infinite, or the run does
  not learn (its train loss stays above the uniform predictor's)."""


class Interrupted(RuntimeError):
  """SIGINT/SIGTERM received; a checkpoint was saved."""


# How a run that ends by one of these is recorded in provenance.json (Workdir.run_recorded).
RECORDED_OUTCOMES = {Diverged: "diverged", Interrupted: "interrupted"}


class TrainState(train_state.TrainState):
  """Optax train state plus the recurrent carry (truncated BPTT; ``None`` for tasks whose
  sequences are whole) and the dropout RNG."""

  carry: Any = None
  rng: jax.Array = None


class StopFlag:
  """Turns SIGINT/SIGTERM into a flag the loop checks between steps (a second signal raises
  ``KeyboardInterrupt`` at once)."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame):
    if self.signum is not None:  # second signal: give up at once
      raise KeyboardInterrupt
    self.signum = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def progress_bar(total: int, initial: int, enabled: bool, desc: str | None = None) -> tqdm:
  """The progress bar of a training run (stderr; sparse updates when stderr is not a tty)."""
  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc=desc,
              disable=not enabled, file=sys.stderr,
              mininterval=1.0 if sys.stderr.isatty() else 30.0)


def stop_signal(stop: StopFlag) -> int | None:
  """The signal that stops the run after this step, or ``None``: this process's
  (:class:`StopFlag`); with several processes the largest signal any process received, so that
  all of them stop at the same step (a collective: every process calls it every step)."""
  if jax.process_count() == 1:
    return stop.signum
  return parallel.max_over_processes(stop.signum or 0) or None


# The tasks whose runs work as several processes (jax.distributed); the others refuse.
MULTI_PROCESS_TASKS = ("lm",)


def check_processes(task_name: str) -> None:
  """Raise ``ValueError`` (one line) if this is a multi-process run of a task that has no
  multi-process support."""
  if jax.process_count() > 1 and task_name not in MULTI_PROCESS_TASKS:
    raise ValueError(f"task {task_name!r} runs in one process only, but this is "
                     f"{parallel.process_line()} (jax.distributed); run it without "
                     "JAX_COORDINATOR_ADDRESS/RNNLM_DISTRIBUTED, or with RNNLM_DISTRIBUTED=0")


def interrupted_reason(signum: int, step: int) -> str:
  """The status reason of a run stopped by a signal."""
  return (f"interrupted by signal {signum} at step {step}; re-run the same command to resume")


def gradient_stats(got: list[dict]) -> dict:
  """The clipping statistics of the steps in ``got`` (each step's ``grad_norm`` before
  clipping, ``clipped`` 0/1 and ``clip_fraction``, see :func:`rnnlm_jax.optim.clip_gradients`):
  the mean, median, 90th percentile and max of the norm, the fraction of steps clipped and the
  mean fraction of groups rescaled."""
  norms = np.array([m["grad_norm"] for m in got], np.float64)
  return {"grad_norm": float(norms.mean()), "grad_norm_p50": float(np.median(norms)),
          "grad_norm_p90": float(np.percentile(norms, 90)), "grad_norm_max": float(norms.max()),
          "clipped": float(np.mean([m["clipped"] for m in got])),
          "clip_fraction": float(np.mean([m["clip_fraction"] for m in got]))}


class Run(Protocol):
  """What a task gives the loop for one config (see the module docstring).

  ``write_files(wd)`` writes what the run needs beside its config (e.g. the language model's
  ``vocab.txt``) once the config is written; ``batch(step)`` returns the inputs of ``train_step`` for global step ``step``, placed on
  the devices; ``start_epoch(state, epoch)`` is called before an epoch's first step (e.g. to
  reset a carried recurrent state); ``train_metrics(got)`` reduces the outputs of the steps
  since the last event to the task's metrics (with ``loss``) and the per-step values whose
  finiteness is checked; ``evaluate(params, split)`` scores a split (with ``loss``);
  ``after_validation`` may change the state (learning-rate plateau, parameter averaging)
  before it is checkpointed.
  """

  steps_per_epoch: int
  total_steps: int
  tokens_per_step: int | None
  uniform_loss: float | None  # the train loss of a uniform prediction (None: not defined)
  select_metric: str
  select_mode: str
  final_splits: tuple[str, ...]

  def write_files(self, wd: Workdir) -> None: ...
  def check(self) -> None: ...
  def data_fingerprint(self) -> dict: ...
  def describe(self, state) -> str: ...
  def init_state(self) -> TrainState: ...
  def place_state(self, state: TrainState) -> TrainState: ...
  def train_step(self, state: TrainState, batch) -> tuple[TrainState, dict]: ...
  def start_epoch(self, state: TrainState, epoch: int) -> TrainState: ...
  def batch(self, step: int): ...
  def train_metrics(self, got: list[dict]) -> tuple[dict, np.ndarray]: ...
  def evaluate(self, params, split: str) -> dict: ...
  def valid_extras(self, state: TrainState) -> dict: ...
  def after_validation(self, state: TrainState, metrics: dict, is_best: bool, meta: dict,
                       step: int, wd: Workdir) -> TrainState: ...


def run_length(train_cfg, steps_per_epoch: int) -> int:
  """Total updates: ``train.num_epochs`` epochs, capped by ``train.max_steps`` (0 = unset)."""
  num_epochs, max_steps = int(train_cfg.num_epochs), int(train_cfg.max_steps)
  total = num_epochs * steps_per_epoch if num_epochs > 0 else max_steps
  return min(total, max_steps) if max_steps > 0 else total


# A run is "not learning" when its train loss is above the uniform prediction's by this much.
NOT_LEARNING_MARGIN = 0.1


def not_learning(train_loss: float, uniform_loss: float | None, step: int,
                 after_steps: int) -> str | None:
  """The reason a run counts as not learning at ``step`` (its last train loss still above the
  uniform predictor's ``uniform_loss`` + :data:`NOT_LEARNING_MARGIN` at or after
  ``after_steps``, 0 = never), else ``None``."""
  if not after_steps or uniform_loss is None or step < after_steps:
    return None
  if train_loss > uniform_loss + NOT_LEARNING_MARGIN:
    return (f"not learning: train loss {train_loss:.4f} at step {step} is above the uniform "
            f"prediction's {uniform_loss:.4f} (+{NOT_LEARNING_MARGIN})")
  return None


def _better(value: float, best: float | None, mode: str) -> bool:
  return best is None or (value < best if mode == "min" else value > best)


def _fmt(metrics: dict) -> str:
  """``"loss 4.1234 perplexity 61.7890"`` for a log line (huge values, e.g. the perplexity of a
  run that blew up, in exponent form: ``perplexity 2.218e+23``)."""
  return " ".join(f"{k} {v:.4f}" if abs(v) < 1e6 else f"{k} {v:.4g}"
                  for k, v in metrics.items() if isinstance(v, float) and k != "epoch")


def fresh_meta() -> dict:
  """The loop's bookkeeping of a run that has not started."""
  return {"best_value": None, "best_step": None, "metrics_lines": 0, "bad_validations": 0,
          "train_seconds": 0.0, "stopped_early": False}


def migrate_meta(meta: dict) -> dict:
  """A checkpoint's ``meta`` in the current form (workdirs of the former separate trainers:
  the language-model loop named the best value ``best_valid_loss``; the whole-sequence loop
  kept ``epoch``/``batch``, now derived from the step)."""
  meta = dict(meta)
  if "best_valid_loss" in meta:
    meta["best_value"] = meta.pop("best_valid_loss")
  for key in ("epoch", "batch"):
    meta.pop(key, None)
  return {**fresh_meta(), **meta}


class RunBook:
  """One run's records on its workdir, kept the same way by every task (the loop below and
  each member of a vmapped synthetic group): the ``latest``/``best`` checkpoints with the
  bookkeeping ``meta`` (:func:`fresh_meta`, plus what a task adds), and ``metrics.jsonl``.

  :meth:`resume` restores the latest checkpoint (or starts from ``template``) and truncates
  ``metrics.jsonl`` to the line count saved with it, so a resumed run writes exactly the
  events of an uninterrupted one; :meth:`save` checkpoints the state with the current line
  count and the training time so far (a second save with nothing new, e.g. a signal right after
  a validation, is skipped).
  """

  def __init__(self, wd: Workdir, keep: int):
    self.wd = wd
    self.ckpt = ckpt_lib.Checkpointer(wd.checkpoint_dir, keep=keep)
    self.meta = fresh_meta()
    self.writer: MetricWriter | None = None
    self.saved: tuple[int, int] | None = None  # (step, metrics lines) of the last save
    self._clock = (0.0, time.perf_counter())  # train seconds before this process, its start

  def resume(self, template):
    """``(state, resumed)``: the latest checkpoint's state (placed like ``template``) and
    meta, or ``template`` and a fresh meta; opens the metrics writer."""
    restored = self.ckpt.restore_latest(template)
    if restored is not None:
      state, meta = restored
      self.meta = migrate_meta(meta)
    else:
      state = template
    self.wd.truncate_metrics(int(self.meta["metrics_lines"]))
    lines = self.wd.count_metrics() if self.wd.primary else 0
    # Every process counts the events (a save is skipped alike everywhere); process 0's count.
    self.writer = MetricWriter(self.wd, lines=parallel.from_primary(lines))
    self._clock = (float(self.meta["train_seconds"]), time.perf_counter())
    self.saved = (_step_of(state), self.writer.lines) if restored is not None else None
    return state, restored is not None

  def write(self, event: dict) -> None:
    self.writer.write(event)

  def _progress(self) -> dict:
    seconds0, t_start = self._clock
    return {"metrics_lines": self.writer.lines,
            "train_seconds": seconds0 + time.perf_counter() - t_start}

  def save(self, state) -> None:
    """Checkpoint ``state`` as the latest, with the bookkeeping (skipped if neither the step
    nor the events changed since the last save)."""
    step = _step_of(state)
    if self.saved == (step, self.writer.lines):
      return
    self.meta.update(self._progress())  # in place: the loop holds this dict
    self.ckpt.save_latest(step, state, dict(self.meta))
    self.saved = (step, self.writer.lines)
    self.wd.note_checkpoint()

  def save_best(self, state) -> None:
    """Checkpoint ``state`` as the best so far (the final evaluation restores it)."""
    self.ckpt.save_best(_step_of(state), state, {**self.meta, **self._progress()})

  def close(self) -> None:
    """Wait for pending saves; close the writer and the checkpointer."""
    if self.writer is not None:
      self.writer.close()
      self.writer = None
    self.ckpt.wait()
    self.ckpt.close()


def _step_of(state) -> int:
  return int(state["step"] if isinstance(state, dict) else state.step)


# ----------------------------------------------------------------------------- entry points


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       accept_data_change: bool = False) -> dict:
  """Train ``config`` in ``workdir`` with its task's run (resuming), evaluate the best-valid
  checkpoint; returns the last final event (e.g. ``test``), or the task's own result for
  tasks that train themselves (synthetic groups).

  Everything that can be wrong with the input is checked (config, data, shapes traced with
  ``jax.eval_shape``) before the workdir is touched; then the workdir is locked (one process
  per workdir) and a resume on data other than the workdir's (``data.json``) is refused unless
  ``accept_data_change``. Raises :class:`Diverged` (status ``diverged``) and
  :class:`Interrupted` (status ``interrupted``, after a checkpoint; re-running resumes).
  """
  from rnnlm_jax import tasks
  config = tasks.migrate_config_dict(config)  # a config file in an older spelling
  task = tasks.get_task(config)
  check_processes(task.name)
  if task.train_and_evaluate is not None:  # a task with its own loop (synthetic groups)
    return task.train_and_evaluate(config, workdir)
  task.validate_config(config)
  wd = Workdir(workdir, primary=parallel.is_primary())
  config_dict = config.to_dict()
  wd.check_config(config_dict)
  # loads (and on first use prepares) the data: bad input fails before writing
  run = primary_first(lambda: task.make_run(config, str(wd.path)))
  run.check()  # shapes of the init, a train step and an evaluation, traced
  fingerprint = run.data_fingerprint()
  data_change = wd.check_data(fingerprint, accept_data_change)
  acquire_everywhere(wd)  # one run per workdir; held until this run returns or the process ends
  try:
    # Again under the lock (another run may have written them): the data here, the config in
    # write_config, which checks it before writing.
    data_change = wd.check_data(fingerprint, accept_data_change) or data_change
    wd.write_config(config_dict)
    wd.record_data(fingerprint)
    if wd.primary:
      run.write_files(wd)

    def recorded():
      if data_change is not None:
        wd.note_provenance(data_changed=data_change)
      return _run(config, wd, run)

    return wd.run_recorded(recorded, RECORDED_OUTCOMES)
  finally:
    wd.release()


def primary_first(fn):
  """``fn()``, run by process 0 before the others (with several processes), so that what it
  prepares on a shared disk (a data set's first preparation) is prepared once; if it fails
  there, the others stop too (a ``ValueError`` pointing at process 0's log)."""
  if jax.process_count() == 1:
    return fn()
  result, error = None, None
  if parallel.is_primary():
    try:
      result = fn()
    except Exception as e:  # noqa: BLE001  re-raised below, once the others know
      error = e
  ok = parallel.from_primary(int(error is None))
  if error is not None:
    raise error
  if not ok:
    raise ValueError(f"{parallel.process_line()}: process 0 failed to load the data; its "
                     "log says why")
  return result if parallel.is_primary() else fn()


def acquire_everywhere(wd: Workdir) -> None:
  """Take the workdir's lock (:meth:`Workdir.acquire`: process 0 of a multi-process run holds
  it for all); with several processes the others learn whether process 0 got it, so that all
  of them go on or all stop (:class:`rnnlm_jax.workdir.WorkdirBusy`)."""
  error = None
  try:
    wd.acquire()
  except WorkdirError as e:
    error = e
  if jax.process_count() > 1 and not parallel.from_primary(int(error is None)):
    raise error or WorkdirBusy(f"workdir {wd.path}: process 0 could not lock it (see its log: "
                               "in use by another run, or not a directory)")
  if error is not None:
    raise error


def _run(config, wd: Workdir, run: Run) -> dict:
  t_cfg = config.train
  spe, total = run.steps_per_epoch, run.total_steps
  select, mode = run.select_metric, run.select_mode
  if mode not in ("min", "max"):
    raise ValueError(f"select_mode must be 'min' or 'max', got {mode!r}")
  patience = int(t_cfg.get("patience", 0))

  state = run.init_state()
  log.info("%s, %d steps/epoch, %d steps", run.describe(state), spe, total)
  book = RunBook(wd, keep=int(t_cfg.get("checkpoint_keep", 2)))
  state, resumed = book.resume(state)  # restored with the shardings of `state`
  meta = book.meta
  if resumed:
    state = run.place_state(state)  # a no-op unless orbax placed a leaf otherwise
    log.info("resumed from step %d (epoch %.2f)", int(state.step), int(state.step) / spe)
  step = int(state.step)
  pending: list = []
  clock = [time.perf_counter(), 0]  # interval start, steps timed in it

  last_train_loss = [float("nan")]

  def diverge(reason: str, at: int | None = None):
    """Record the run as diverged at step ``at`` (default: now) and stop it."""
    at = step if at is None else at
    wd.write_status("diverged", at, at / spe, reason)
    raise Diverged(f"{reason}; see {wd.metrics_file}")

  def flush():
    """One train event for the steps since the last one; raise Diverged on NaN/inf."""
    if not pending:
      return
    got = jax.device_get(pending)
    pending.clear()
    task_metrics, per_step = run.train_metrics(got)
    last_train_loss[0] = float(task_metrics["loss"])
    grads = gradient_stats(got)
    elapsed, timed = time.perf_counter() - clock[0], clock[1]
    steps_per_sec = timed / elapsed if timed and elapsed > 0 else None
    event = {"step": step, "epoch": step / spe, "split": "train", **task_metrics, **grads,
             "lr": float(got[-1]["lr"]), "steps_per_sec": steps_per_sec,
             "tokens_per_sec": (steps_per_sec * run.tokens_per_step
                                if steps_per_sec and run.tokens_per_step else None)}
    book.write(event)
    norms = np.array([m["grad_norm"] for m in got], np.float64)
    finite = np.isfinite(per_step) & np.isfinite(norms)
    if not np.all(finite):
      bad = step - len(got) + int(np.argmin(finite)) + 1
      diverge(f"non-finite loss or gradient at step {bad}", bad)
    wd.write_status("running", step, step / spe)  # the heartbeat
    rate = event["tokens_per_sec"]
    log.info("step %d epoch %.2f train: %s gnorm %.3f clipped %.2f lr %.4g %s", step,
             step / spe, _fmt({k: task_metrics[k] for k in list(task_metrics)[:2]}),
             grads["grad_norm"], grads["clipped"], event["lr"],
             f"{rate:,.0f} tok/s" if rate else "")
    bar.set_postfix_str(f"loss {task_metrics['loss']:.3f} gnorm {grads['grad_norm']:.2f}"
                        + (f" {rate:,.0f} tok/s" if rate else ""))
    clock[0], clock[1] = time.perf_counter(), 0

  def validate():
    """Score valid; keep the best; count validations without improvement; checkpoint."""
    nonlocal state
    metrics = run.evaluate(optim.eval_params(state.opt_state, state.params), "valid")
    value = metrics[select]
    finite = bool(np.isfinite(value) and np.isfinite(metrics["loss"]))
    is_best = finite and _better(value, meta["best_value"], mode)
    book.write({"step": step, "epoch": step / spe, "split": "valid", **metrics,
                "best": is_best, **run.valid_extras(state)})
    log.info("step %d epoch %.2f valid: %s%s", step, step / spe, _fmt(metrics),
             " (best)" if is_best else "")
    reason = (None if finite else f"non-finite validation {select} at step {step}") or \
        not_learning(last_train_loss[0], run.uniform_loss, step,
                     int(t_cfg.get("not_learning_steps", 0)))
    if reason is not None:
      diverge(reason)
    if is_best:
      meta["best_value"], meta["best_step"], meta["bad_validations"] = value, step, 0
    else:
      meta["bad_validations"] += 1
    state = run.after_validation(state, metrics, is_best, meta, step, wd)
    if is_best:
      book.save_best(state)
    if patience and meta["bad_validations"] >= patience:
      meta["stopped_early"] = True
      log.info("stopping early: %d validations without improvement", patience)
    book.save(state)
    wd.write_status("running", step, step / spe)

  bar = progress_bar(total, step, bool(t_cfg.get("progress_bar", True)) and wd.primary)
  log_every, ckpt_every = int(t_cfg.log_every), int(t_cfg.checkpoint_every_steps)
  start = step
  try:
    with StopFlag() as stop, logging_redirect_tqdm():
      while step < total and not meta["stopped_early"]:
        if step % spe == 0:
          state = run.start_epoch(state, step // spe)
        state, metrics = run.train_step(state, run.batch(step))
        pending.append(metrics)
        if step == start:  # exclude compilation from the throughput
          jax.block_until_ready(metrics)
          clock[0] = time.perf_counter()
        else:
          clock[1] += 1
        step += 1
        bar.update(1)
        epoch_done = step % spe == 0
        if epoch_done or step == total:
          flush()
          validate()
        elif step % ckpt_every == 0:
          flush()  # also at checkpoints, so that a resumed run logs the same events
          book.save(state)
          wd.write_status("running", step, step / spe)
        elif step % log_every == 0:
          flush()
        signum = (stop_signal(stop) if step < total and not meta["stopped_early"]
                  else None)
        if signum is not None:
          flush()
          book.save(state)
          book.ckpt.wait()
          reason = interrupted_reason(signum, step)
          wd.write_status("interrupted", step, step / spe, reason)
          raise Interrupted(reason)
  finally:
    bar.close()
    book.ckpt.wait()

  best = book.ckpt.restore_best(state)
  best_state, best_meta = best if best is not None else (state, meta)
  best_meta = migrate_meta(best_meta)
  best_params = optim.eval_params(best_state.opt_state, best_state.params)
  event = {}
  for split in run.final_splits:
    metrics = run.evaluate(best_params, split)
    event = {"step": step, "epoch": step / spe, "split": split, **metrics,
             "checkpoint": "best_valid", "checkpoint_step": int(best_state.step),
             f"valid_{select}": best_meta["best_value"],
             "train_seconds": float(book.meta["train_seconds"])}
    book.write(event)
    log.info("%s (best-valid checkpoint, step %d): %s", split, int(best_state.step),
             _fmt(metrics))
    if not np.isfinite(metrics["loss"]):
      book.close()
      diverge(f"non-finite {split} loss of the best-valid checkpoint (step "
              f"{int(best_state.step)})")
  book.close()
  reason = "stopped early (patience)" if meta["stopped_early"] else ""
  wd.write_status("finished", step, step / spe, reason)
  return event
