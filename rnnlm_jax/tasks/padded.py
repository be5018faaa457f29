"""Runs on padded batches of whole sequences, shared by the ``music`` and ``classify`` tasks.

A padded-sequence task module (:mod:`rnnlm_jax.tasks.music`, :mod:`rnnlm_jax.tasks.classify`)
registers itself with ``TASK = make_task_def(name, make_task, validate_config)``:
``validate_config(config)`` checks its own fields and ``make_task(config, workdir)`` builds
(data -> padded batches of :mod:`rnnlm_jax.data.padded` -> model of :mod:`rnnlm_jax.models`)
an object with:

* ``select_metric`` / ``select_mode``: the ``summarize()`` key that picks the best-validation
  checkpoint, and ``"min"`` or ``"max"``;
* ``batches(split, batch_size, rng)``: the split as padded numpy batches (dicts of arrays),
  shuffled with ``rng`` (training) or in a fixed order with ``rng=None`` (evaluation), every
  example once, shapes from a small set (length buckets, weight-0 padding rows);
* ``init_params(key)``: the parameter pytree;
* ``loss(params, batch, rng) -> (objective, sums)``: jittable; ``rng=None`` means evaluation;
  ``objective`` is the scalar that is differentiated, ``sums`` float32 scalars that add across
  batches (padding contributes 0);
* ``summarize(sums) -> metrics``: the metrics of a split from its summed stats (has ``loss``);
* optionally ``trainable(params)``: a pytree of bools; ``False`` leaves are frozen;
* optionally ``uniform_loss``: the ``loss`` of a model that predicts uniformly (in the units of
  ``summarize``'s ``loss``);
* optionally ``data_fingerprint() -> dict``: what identifies the prepared data (else the
  evaluation batches of every split are hashed, :func:`batches_fingerprint`);
* optionally ``check_workdir(workdir)``: check (read only) what a resumed workdir already
  holds, e.g. its ``vocab.txt``; and ``write_files(workdir)``: write it once the config is
  written. ``make_task(config, None)`` must write nothing.

:class:`PaddedRun` gives it to the one loop (:mod:`rnnlm_jax.loop`); per step:

    objective, sums = task.loss(params, batch, dropout_rng)
    grads = clip(d objective / d params)       (optim.clip_mode; pre-clip norm logged)
    params = optimizer update                  (frozen leaves kept)

The loop validates after every epoch, keeps the best checkpoint by ``select_metric``, stops
early after ``train.patience`` validations without improvement, and at the end scores the
best checkpoint on valid and test (events with ``checkpoint: "best_valid"``).
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import loop
from rnnlm_jax import optim
from rnnlm_jax import tasks
from rnnlm_jax.data import fingerprint
from rnnlm_jax.loop import TrainState
from rnnlm_jax.tasks import Task
from rnnlm_jax.workdir import Workdir

log = logging.getLogger("rnnlm_jax")


def validate_config(config, validate_task) -> None:
  """Raise ``ValueError`` with a fix for anything wrong in the config: the task's own fields
  (``validate_task(config)``: data.name, model.pooling, ...) and the shared ones."""
  validate_task(config)
  optim.validate(config.optim)
  t = config.train
  for key in ("batch_size", "eval_batch_size", "log_every", "checkpoint_every_steps"):
    if int(t[key]) <= 0:
      raise ValueError(f"train.{key} must be positive, got {t[key]}")
  if int(t.num_epochs) <= 0 and int(t.max_steps) <= 0:
    raise ValueError("set train.num_epochs or train.max_steps to a positive number")
  if int(t.patience) < 0:
    raise ValueError(f"train.patience must be >= 0, got {t.patience}")


def checked_eval_shape(what: str, fn, *args):
  """``jax.eval_shape(fn, *args)`` (traced, nothing computed); a shape error (``TypeError``
  or ``ValueError``) becomes a one-line ``ValueError`` naming ``what`` was traced (the runs'
  ``check()``, before anything is written)."""
  try:
    return jax.eval_shape(fn, *args)
  except (TypeError, ValueError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ValueError(f"{what} fails on these shapes ({type(e).__name__}: {first}); check the "
                     "model.* sizes against the data") from e


def abstract(tree):
  """``tree`` (e.g. a numpy batch) as ``jax.ShapeDtypeStruct`` leaves."""
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), tree)


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
  return jax.jit(train_step_fn(task, optim_cfg, mask), donate_argnums=0)


def train_step_fn(task, optim_cfg, mask=None):
  """The step of :func:`make_train_step` before ``jax.jit`` (``PaddedRun.check`` traces it)."""

  def train_step(state: TrainState, batch):
    rng, sub = jax.random.split(state.rng)
    (objective, sums), grads = jax.value_and_grad(
        lambda p: task.loss(p, batch, sub), has_aux=True)(state.params)
    if mask is not None:
      grads = jax.tree.map(lambda g, m: g if m else jnp.zeros_like(g), grads, mask)
    new = state.apply_gradients(grads=grads)  # clipped in the optimizer's chain
    if mask is not None:
      new = new.replace(params=jax.tree.map(lambda n, o, m: n if m else o, new.params,
                                            state.params, mask))
    metrics = {"objective": objective, "lr": optim.get_learning_rate(new.opt_state),
               **optim.clip_stats(new.opt_state), **{f"sum/{k}": v for k, v in sums.items()}}
    return new.replace(rng=rng), metrics

  return train_step


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


def first_batch(task, split: str, batch_size: int) -> dict[str, np.ndarray] | None:
  """The first evaluation batch of ``split`` (``None`` if the split gives none)."""
  return next(iter(task.batches(split, batch_size, None)), None)


def no_batches_error(config, split: str, key: str) -> ValueError:
  return ValueError(f"data: the {split} split of {config.data.name} gives no batches of "
                    f"train.{key}={int(config.train[key])} (it holds no examples); use a data "
                    "set with examples in every split")


def batches_fingerprint(task, batch_size: int) -> dict:
  """The fallback ``data_fingerprint`` of a task without one: sha256 of each split's
  evaluation batches (:func:`rnnlm_jax.data.fingerprint.batches_sha256`)."""
  return {s: {"sha256": fingerprint.batches_sha256(task.batches(s, batch_size, None))}
          for s in ("train", "valid", "test")}


class PaddedRun:
  """A run on padded batches for :func:`rnnlm_jax.loop.train_and_evaluate` (the ``loop.Run``
  protocol); epoch ``e``'s batches are shuffled with ``np.random.default_rng([seed, e])``."""

  final_splits = ("valid", "test")
  tokens_per_step = None

  def __init__(self, config, task):
    self.config, self.task = config, task
    self.select_metric, self.select_mode = task.select_metric, task.select_mode
    self._epoch, self._batches = 0, epoch_batches(task, config, 0)
    self.steps_per_epoch = len(self._batches)
    if not self.steps_per_epoch:
      raise no_batches_error(config, "train", "batch_size")
    self.total_steps = loop.run_length(config.train, self.steps_per_epoch)
    self.eval_batch_size = int(config.train.eval_batch_size)
    self._eval_batch = {}
    for split in ("valid", "test"):
      self._eval_batch[split] = first_batch(task, split, self.eval_batch_size)
      if self._eval_batch[split] is None:
        raise no_batches_error(config, split, "eval_batch_size")
    self.uniform_loss = getattr(task, "uniform_loss", None)
    self._eval_step = make_eval_step(task)

  def write_files(self, wd: Workdir) -> None:
    """What the task keeps beside the config (``task.write_files``, e.g. the classifier's
    vocabulary), if anything."""
    write = getattr(self.task, "write_files", None)
    if write is not None:
      write(str(wd.path))

  def check(self) -> None:
    """Trace (``jax.eval_shape``) the initial state, one train step on the first training
    batch and one evaluation step on the first validation batch; a shape error becomes a
    one-line ``ValueError``."""
    state = checked_eval_shape("the parameter init",
                               lambda: create_train_state(self.config, self.task))
    step = train_step_fn(self.task, self.config.optim, trainable_mask(self.task, state.params))
    checked_eval_shape(f"one train step on a batch of train.batch_size="
                       f"{int(self.config.train.batch_size)}", step, state,
                       abstract(self._batches[0]))
    checked_eval_shape(f"one evaluation step on a batch of train.eval_batch_size="
                       f"{self.eval_batch_size}", self._eval_step, state.params,
                       abstract(self._eval_batch["valid"]))

  def data_fingerprint(self) -> dict:
    """The task's ``data_fingerprint()``, or the hashes of its evaluation batches."""
    own = getattr(self.task, "data_fingerprint", None)
    if own is not None:
      return own()
    return {"fingerprint_version": fingerprint.FINGERPRINT_VERSION,
            "task": tasks.task_name(self.config), "dataset": str(self.config.data.name),
            "splits": batches_fingerprint(self.task, self.eval_batch_size)}

  def describe(self, state) -> str:
    mask = trainable_mask(self.task, state.params)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    n_frozen = 0 if mask is None else sum(
        x.size for x, m in zip(jax.tree.leaves(state.params), jax.tree.leaves(mask)) if not m)
    c = self.config
    return (f"{tasks.task_name(c)} {c.data.name}: {c.model.cell} {int(c.model.num_layers)}x"
            f"{int(c.model.hidden_size)}, {n_params / 1e6:.3f}M params "
            f"({n_frozen / 1e6:.3f}M frozen)")

  def init_state(self) -> TrainState:
    state = create_train_state(self.config, self.task)
    self._step_fn = make_train_step(self.task, self.config.optim,
                                    trainable_mask(self.task, state.params))
    return state

  def place_state(self, state: TrainState) -> TrainState:
    return state

  def start_epoch(self, state: TrainState, epoch: int) -> TrainState:
    return state

  def batch(self, step: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch, self._batches = epoch, epoch_batches(self.task, self.config, epoch)
      if len(self._batches) != self.steps_per_epoch:
        raise ValueError(f"the task gave {len(self._batches)} batches in epoch {epoch} but "
                         f"{self.steps_per_epoch} before; batches per epoch must not change")
    return self._batches[i]

  def train_step(self, state: TrainState, batch):
    return self._step_fn(state, batch)

  def train_metrics(self, got: list[dict]) -> tuple[dict, np.ndarray]:
    """The task's metrics of the summed statistics of ``got``, and the mean objective."""
    sums: dict[str, float] = {}
    for m in got:
      for k, v in m.items():
        if k.startswith("sum/"):
          sums[k[4:]] = sums.get(k[4:], 0.0) + float(v)
    objective = np.array([m["objective"] for m in got], np.float64)
    return ({**{k: float(v) for k, v in self.task.summarize(sums).items()},
             "objective": float(objective.mean())}, objective)

  def evaluate(self, params, split: str) -> dict:
    return evaluate(self._eval_step, params, self.task, split, self.eval_batch_size)

  def valid_extras(self, state: TrainState) -> dict:
    return {}

  def after_validation(self, state, metrics, is_best, meta, step, wd) -> TrainState:
    return state


def make_task_def(name: str, make_task, validate_task) -> Task:
  """The registry entry of a padded-sequence task: ``make_task(config, workdir)`` builds the
  task object (the protocol above), ``validate_task(config)`` checks the task's own fields."""

  def validate(config) -> None:
    validate_config(config, validate_task)

  def make_run(config, workdir: str | None = None) -> PaddedRun:
    """Build the task (writing nothing), check what a resumed ``workdir`` holds, and the run
    (its split checks)."""
    task = make_task(config, None)
    check_workdir = getattr(task, "check_workdir", None)
    if workdir and check_workdir is not None:
      check_workdir(workdir)
    return PaddedRun(config, task)

  def evaluate_wd(workdir: str, split: str = "test", checkpoint: str = "best",
                  text: str | None = None) -> dict:
    if text:
      raise ValueError("--text works for language models only; use --split for this workdir")
    return evaluate_workdir(workdir, split, checkpoint, make_task)

  return Task(name=name, validate_config=validate, make_run=make_run,
              evaluate_workdir=evaluate_wd)


def evaluate_workdir(workdir: str, split: str, checkpoint: str, make_task) -> dict:
  """Score a trained workdir's checkpoint on ``split`` (``rnnlm-eval`` for these tasks);
  ``make_task(config, workdir)`` builds the task object."""
  wd = Workdir(workdir)
  config = ml_collections.ConfigDict(wd.read_config())
  task = make_task(config, str(wd.path))
  if split not in ("train", "valid", "test"):
    raise ValueError(f"unknown split {split!r}; choose train, valid or test")
  state = ckpt_lib.restore_for_evaluation(wd.checkpoint_dir, create_train_state(config, task),
                                          checkpoint)
  metrics = evaluate(make_eval_step(task), state.params, task, split,
                     int(config.train.eval_batch_size))
  return {"source": split, "checkpoint": checkpoint, "checkpoint_step": int(state.step),
          **metrics}
