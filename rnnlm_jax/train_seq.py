"""Training on padded batches of whole sequences: polyphonic music and text classification.

A config with a top-level ``kind`` field (``config_base.seq_config(kind)``) is trained here.
The task - data, model and loss - comes from the module ``TASKS[kind]``, whose
``make_task(config, workdir)`` returns an object with:

* ``select_metric`` / ``select_mode``: the ``summarize()`` key that picks the best-validation
  checkpoint, and ``"min"`` or ``"max"``;
* ``batches(split, batch_size, rng)``: the split as padded numpy batches (dicts of arrays), shuffled
  with ``rng`` (training) or in a fixed order with ``rng=None`` (evaluation), every example once,
  shapes from a small set (length buckets, weight-0 padding rows);
* ``init_params(key)``: the parameter pytree;
* ``loss(params, batch, rng) -> (objective, sums)``: jittable; ``rng=None`` means evaluation;
  ``objective`` is the scalar that is differentiated, ``sums`` float32 scalars that add across
  batches (padding contributes 0);
* ``summarize(sums) -> metrics``: the metrics of a split from its summed stats (has ``loss``);
* optionally ``trainable(params)``: a pytree of bools; ``False`` leaves are frozen.

The loop (per epoch ``e``, batches shuffled with ``np.random.default_rng([seed, e])``):

    objective, sums = task.loss(params, batch, dropout_rng)
    grads = clip(d objective / d params)       (optim.clip_mode; pre-clip norm logged)
    params = optimizer update                  (frozen leaves kept)

After every epoch the validation split is scored; the best one (``select_metric``) is kept as
the ``best`` checkpoint, and training stops early after ``train.patience`` validations without
improvement. At the end the best checkpoint is scored on valid and test (``metrics.jsonl``
events with ``checkpoint: "best_valid"``). Checkpoints carry the position ``(epoch, batch)``,
so an interrupted run resumes exactly where it stopped (the workdir contract of
:mod:`rnnlm_jax.workdir`).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import optim
from rnnlm_jax.train import RECORDED_OUTCOMES, Diverged, Interrupted, TrainState, _StopFlag
from rnnlm_jax.workdir import MetricWriter, Workdir

log = logging.getLogger("rnnlm_jax")

# config.kind -> the module whose make_task(config, workdir) builds the task.
TASKS = {
    "music": "rnnlm_jax.models.music",
    "classify": "rnnlm_jax.models.classifier",
}


def is_seq_config(config) -> bool:
  """Whether ``config`` is trained here (it has a ``kind`` field)."""
  return "kind" in config


def validate_config(config) -> None:
  """Raise ``ValueError`` with a fix for anything wrong in the config (shared keys, and the
  task's own through its module's ``validate_config`` when it has one)."""
  if config.kind not in TASKS:
    raise ValueError(f"unknown kind {config.kind!r}; choose one of {', '.join(TASKS)}")
  task_check = getattr(importlib.import_module(TASKS[config.kind]), "validate_config", None)
  if task_check is not None:  # the task's own fields (data.name, model.pooling, ...)
    task_check(config)
  optim.validate(config.optim)
  t = config.train
  for key in ("batch_size", "eval_batch_size", "log_every", "checkpoint_every_steps"):
    if int(t[key]) <= 0:
      raise ValueError(f"train.{key} must be positive, got {t[key]}")
  if int(t.num_epochs) <= 0 and int(t.max_steps) <= 0:
    raise ValueError("set train.num_epochs or train.max_steps to a positive number")
  if int(t.patience) < 0:
    raise ValueError(f"train.patience must be >= 0, got {t.patience}")


def make_task(config, workdir: str | None = None):
  """The task object of ``config.kind`` (see the module docstring)."""
  if config.kind not in TASKS:
    raise ValueError(f"unknown kind {config.kind!r}; choose one of {', '.join(TASKS)}")
  return importlib.import_module(TASKS[config.kind]).make_task(config, workdir)


# ----------------------------------------------------------------------------- steps


def trainable_mask(task, params):
  """The task's pytree of bools (``True`` = trained), or ``None`` when everything trains."""
  fn = getattr(task, "trainable", None)
  mask = fn(params) if fn is not None else None
  if mask is None or all(bool(m) for m in jax.tree.leaves(mask)):
    return None
  return mask


def make_train_step(task, optim_cfg, mask=None):
  """A jitted ``(state, batch) -> (state, metrics)``; ``state`` is donated.

  ``metrics`` holds the task's ``sums``, ``objective``, ``lr`` and the clipping stats
  (``grad_norm`` before clipping, ``clipped``, ``clip_fraction``). Leaves where ``mask`` is
  False get a zero gradient and keep their values.
  """
  clip_mode, clip_value = optim_cfg.clip_mode, float(optim_cfg.clip_value)

  def train_step(state: TrainState, batch):
    rng, sub = jax.random.split(state.rng)
    (objective, sums), grads = jax.value_and_grad(
        lambda p: task.loss(p, batch, sub), has_aux=True)(state.params)
    if mask is not None:
      grads = jax.tree.map(lambda g, m: g if m else jnp.zeros_like(g), grads, mask)
    grads, stats = optim.clip_gradients(grads, clip_mode, clip_value, state.params)
    new = state.apply_gradients(grads=grads)
    if mask is not None:
      new = new.replace(params=jax.tree.map(lambda n, o, m: n if m else o, new.params,
                                            state.params, mask))
    metrics = {"objective": objective, "lr": optim.get_learning_rate(new.opt_state),
               **stats, **{f"sum/{k}": v for k, v in sums.items()}}
    return new.replace(rng=rng), metrics

  return jax.jit(train_step, donate_argnums=0)


def make_eval_step(task):
  """A jitted ``(params, batch) -> sums`` without dropout."""
  return jax.jit(lambda params, batch: task.loss(params, batch, None)[1])


def evaluate(eval_step, params, task, split: str, batch_size: int) -> dict[str, float]:
  """``task.summarize`` of the summed stats over every batch of ``split``."""
  total: dict[str, float] = {}
  for batch in task.batches(split, batch_size, None):
    sums = jax.device_get(eval_step(params, batch))
    for k, v in sums.items():
      total[k] = total.get(k, 0.0) + float(v)
  return {k: float(v) for k, v in task.summarize(total).items()}


def create_train_state(config, task) -> TrainState:
  """Fresh state from ``config.seed``: params, optimizer state, dropout RNG."""
  init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(int(config.seed)))
  params = task.init_params(init_rng)
  tx = optim.make_optimizer(config.optim, 1)
  return TrainState.create(apply_fn=None, params=params, tx=tx, rng=dropout_rng)


def epoch_batches(task, config, epoch: int) -> list[dict[str, np.ndarray]]:
  """Epoch ``epoch``'s training batches, in order (a function of ``(seed, epoch)`` only)."""
  rng = np.random.default_rng([int(config.seed), int(epoch)])
  return list(task.batches("train", int(config.train.batch_size), rng))


# ----------------------------------------------------------------------------- the loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Train, validate every epoch, score the best-valid checkpoint on valid and test.

  Returns the final test event. Raises :class:`rnnlm_jax.train.Diverged` on a NaN/inf
  objective (status ``diverged``) and :class:`rnnlm_jax.train.Interrupted` on SIGINT/SIGTERM
  (a checkpoint is saved first; re-running resumes).
  """
  validate_config(config)
  wd = Workdir(workdir)
  config_dict = config.to_dict()
  wd.check_config(config_dict)
  task = make_task(config, str(wd.path))  # loads the data: bad input fails before writing
  wd.write_config(config_dict)
  return wd.run_recorded(lambda: _run(config, wd, task), RECORDED_OUTCOMES)


def _better(value: float, best: float | None, mode: str) -> bool:
  return best is None or (value < best if mode == "min" else value > best)


def _fmt(metrics: dict) -> str:
  return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))


def _run(config, wd: Workdir, task) -> dict:
  t_cfg = config.train
  num_epochs, max_steps = int(t_cfg.num_epochs), int(t_cfg.max_steps)
  eval_bs, patience = int(t_cfg.eval_batch_size), int(t_cfg.patience)
  select, mode = task.select_metric, task.select_mode
  if mode not in ("min", "max"):
    raise ValueError(f"task.select_mode must be 'min' or 'max', got {mode!r}")

  state = create_train_state(config, task)
  mask = trainable_mask(task, state.params)
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  n_frozen = 0 if mask is None else sum(
      x.size for x, m in zip(jax.tree.leaves(state.params), jax.tree.leaves(mask)) if not m)
  ckpt = ckpt_lib.Checkpointer(wd.checkpoint_dir, keep=int(t_cfg.checkpoint_keep))
  meta: dict[str, Any] = {"epoch": 0, "batch": 0, "best_value": None, "best_step": None,
                          "bad_validations": 0, "train_seconds": 0.0, "metrics_lines": 0,
                          "stopped_early": False}
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state, meta = restored
    wd.truncate_metrics(int(meta["metrics_lines"]))
    log.info("resumed at epoch %d, batch %d (step %d)", meta["epoch"], meta["batch"],
             int(state.step))
  else:
    wd.truncate_metrics(0)
  writer = MetricWriter(wd)
  train_step = make_train_step(task, config.optim, mask)
  eval_step = make_eval_step(task)

  batches_epoch = int(meta["epoch"])
  batches = epoch_batches(task, config, batches_epoch)
  spe = len(batches)
  total = num_epochs * spe if num_epochs > 0 else max_steps
  if max_steps > 0:
    total = min(total, max_steps)
  log.info("%s %s: %d train batches/epoch, %s %dx%d, %.3fM params (%.3fM frozen), %d updates",
           config.kind, config.data.name, spe, config.model.cell, int(config.model.num_layers),
           int(config.model.hidden_size), n_params / 1e6, n_frozen / 1e6, total)

  step = int(state.step)
  pending: list = []
  clock = [time.perf_counter(), 0]  # interval start, updates timed in it

  def position(epoch, batch):
    return epoch + batch / max(spe, 1)

  def save():
    meta["metrics_lines"] = writer.lines
    ckpt.save_latest(step, state, dict(meta))

  def flush():
    if not pending:
      return
    got = jax.device_get(pending)
    pending.clear()
    sums: dict[str, float] = {}
    for m in got:
      for k, v in m.items():
        if k.startswith("sum/"):
          sums[k[4:]] = sums.get(k[4:], 0.0) + float(v)
    objective = np.array([m["objective"] for m in got], np.float64)
    norms = np.array([m["grad_norm"] for m in got], np.float64)
    elapsed = time.perf_counter() - clock[0]
    event = {"step": step, "epoch": position(meta["epoch"], meta["batch"]), "split": "train",
             **{k: float(v) for k, v in task.summarize(sums).items()},
             "objective": float(objective.mean()), "grad_norm": float(norms.mean()),
             "grad_norm_p50": float(np.median(norms)),
             "grad_norm_p90": float(np.percentile(norms, 90)), "grad_norm_max": float(norms.max()),
             "clipped": float(np.mean([m["clipped"] for m in got])),
             "clip_fraction": float(np.mean([m["clip_fraction"] for m in got])),
             "lr": float(got[-1]["lr"]),
             "updates_per_sec": clock[1] / elapsed if clock[1] and elapsed > 0 else None}
    writer.write(event)
    if not np.all(np.isfinite(objective)) or not np.all(np.isfinite(norms)):
      bad = step - len(got) + int(np.argmin(np.isfinite(objective) & np.isfinite(norms))) + 1
      reason = f"non-finite loss or gradient at step {bad}"
      wd.write_status("diverged", bad, event["epoch"], reason)
      raise Diverged(f"{reason}; see {wd.metrics_file}")
    log.info("step %d epoch %.2f train: %s gnorm %.3f clipped %.2f", step, event["epoch"],
             _fmt({"loss": event["loss"]}), event["grad_norm"], event["clipped"])
    bar.set_postfix_str(f"loss {event['loss']:.3f} gnorm {event['grad_norm']:.2f}")
    clock[0], clock[1] = time.perf_counter(), 0

  def validate_epoch():
    """Score valid after a full epoch; keep the best; count validations without improvement."""
    metrics = evaluate(eval_step, state.params, task, "valid", eval_bs)
    value = metrics[select]
    is_best = _better(value, meta["best_value"], mode)
    writer.write({"step": step, "epoch": float(meta["epoch"]), "split": "valid", **metrics,
                  "best": is_best})
    log.info("epoch %d valid: %s%s", meta["epoch"], _fmt(metrics), " (best)" if is_best else "")
    if is_best:
      meta["best_value"], meta["best_step"], meta["bad_validations"] = value, step, 0
      ckpt.save_best(step, state, dict(meta, metrics_lines=writer.lines))
    else:
      meta["bad_validations"] += 1
    return metrics

  bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
             disable=not t_cfg.progress_bar, file=sys.stderr,
             mininterval=1.0 if sys.stderr.isatty() else 30.0)
  log_every, ckpt_every = int(t_cfg.log_every), int(t_cfg.checkpoint_every_steps)
  t_start = time.perf_counter()
  first = True
  seconds0 = float(meta["train_seconds"])
  try:
    with _StopFlag() as stop, logging_redirect_tqdm():
      while step < total and not meta["stopped_early"]:
        if batches_epoch != meta["epoch"]:
          batches_epoch = int(meta["epoch"])
          batches = epoch_batches(task, config, batches_epoch)
          if len(batches) != spe:
            raise ValueError(f"the task gave {len(batches)} batches in epoch {batches_epoch} "
                             f"but {spe} before; batches per epoch must not change")
        batch = batches[meta["batch"]]
        state, metrics = train_step(state, batch)
        pending.append(metrics)
        step += 1
        meta["batch"] += 1
        if first:  # exclude compilation from the throughput
          jax.block_until_ready(metrics)
          clock[0], first = time.perf_counter(), False
        else:
          clock[1] += 1
        bar.update(1)
        epoch_done = meta["batch"] == spe
        if step % log_every == 0 or step % ckpt_every == 0 or epoch_done or step == total:
          flush()  # also at checkpoints, so that a resumed run logs the same events
        if epoch_done:
          meta["epoch"], meta["batch"] = meta["epoch"] + 1, 0
          meta["train_seconds"] = seconds0 + time.perf_counter() - t_start
          validate_epoch()
          if patience and meta["bad_validations"] >= patience:
            meta["stopped_early"] = True
            log.info("stopping early: %d validations without improvement", patience)
          save()
          wd.write_status("running", step, float(meta["epoch"]))
        elif step % ckpt_every == 0:
          save()
          wd.write_status("running", step, position(meta["epoch"], meta["batch"]))
        if stop.signum is not None and step < total and not meta["stopped_early"]:
          flush()
          meta["train_seconds"] = seconds0 + time.perf_counter() - t_start
          save()
          ckpt.wait()
          reason = (f"interrupted by signal {stop.signum} at step {step}; re-run the same "
                    "command to resume")
          wd.write_status("failed", step, position(meta["epoch"], meta["batch"]), reason)
          raise Interrupted(reason)
      if meta["batch"] and step == total:  # max_steps stopped mid-epoch: validate there too
        flush()
        meta["train_seconds"] = seconds0 + time.perf_counter() - t_start
        validate_epoch()
        save()
  finally:
    bar.close()
    ckpt.wait()

  best = ckpt.restore_best(state)
  best_state, best_meta = best if best is not None else (state, meta)
  final = {}
  for split in ("valid", "test"):
    metrics = evaluate(eval_step, best_state.params, task, split, eval_bs)
    final[split] = {"step": step, "epoch": position(meta["epoch"], meta["batch"]),
                    "split": split, **metrics, "checkpoint": "best_valid",
                    "checkpoint_step": int(best_state.step),
                    "train_seconds": float(meta["train_seconds"])}
    writer.write(final[split])
    log.info("%s (best-valid checkpoint, step %d): %s", split, int(best_state.step),
             _fmt(metrics))
  writer.close()
  ckpt.close()
  reason = "stopped early (patience)" if meta["stopped_early"] else ""
  wd.write_status("finished", step, position(meta["epoch"], meta["batch"]), reason)
  return final["test"]


def evaluate_workdir(workdir: str, split: str = "test", checkpoint: str = "best") -> dict:
  """Score a trained workdir's checkpoint on ``split`` (``rnnlm-eval`` for these tasks)."""
  wd = Workdir(workdir)
  config = ml_collections.ConfigDict(wd.read_config())
  task = make_task(config, str(wd.path))
  if split not in ("train", "valid", "test"):
    raise ValueError(f"unknown split {split!r}; choose train, valid or test")
  ckpt = ckpt_lib.Checkpointer(wd.checkpoint_dir)
  target = create_train_state(config, task)
  restored = ckpt.restore_best(target) if checkpoint == "best" else ckpt.restore_latest(target)
  if restored is None:
    raise FileNotFoundError(f"no {checkpoint} checkpoint in {wd.checkpoint_dir}; train first")
  state, _ = restored
  metrics = evaluate(make_eval_step(task), state.params, task, split,
                     int(config.train.eval_batch_size))
  ckpt.close()
  return {"source": split, "checkpoint": checkpoint, "checkpoint_step": int(state.step),
          **metrics}
