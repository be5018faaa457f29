"""The ``synthetic`` task: Pascanu et al. 2013's long-range problems, several runs at once in
one vmapped program.

These runs keep their own step function and group loop (fresh data every update, a fixed test
set, early stop at success, K members in one program) but the one loop's bookkeeping
(:mod:`rnnlm_jax.loop`: exceptions, signal flag, progress bar, the train-event gradient
statistics and the workdir contract of :mod:`rnnlm_jax.workdir`) per member.

``train_group(configs, workdirs)`` trains K runs ("members") that differ only in numeric
values (:data:`VMAP_KEYS`: seed, learning rate, clip threshold, init scale, Omega weight) as one
compiled program: parameters and optimizer states are stacked along a leading member axis and
the update is ``jax.vmap``-ed over it. Every member keeps its own workdir (the single-run
contract of :mod:`rnnlm_jax.workdir`), its own data stream and its own early stop; the numbers
of a member are those of its sequential run (``vmap=False``, or K = 1) up to float rounding
(checked in ``tests/test_synthetic_train.py``).

Per member, per update ``s`` (counted from 0):

    batch   = task.generate(fold_in(PRNGKey(seed) ->1, s), batch_size, length)   (fresh data)
    grads   = d loss / d params  (+ omega_weight * dOmega/dW_hh for SGD-CR)
    grads   = clip(grads)        (optim.clip_mode, threshold optim.clip_value)
    params  = optimizer update

Parameters start from ``init_params(fold_in(PRNGKey(seed) -> 0))``. Every ``train.eval_every``
updates the fixed test set (``synthetic.test_size`` sequences, the same for all seeds) is scored;
a member whose error rate is below ``synthetic.success_error_rate`` has succeeded and stops (its
status: finished, ``success: true``). With ``synthetic.valid_size`` > 0 a second fixed set of
that many sequences (:func:`rnnlm_jax.synthetic.tasks.valid_key`) is scored just before, as a
``valid`` event: the split to choose hyper-parameters on (``rnnlm-report --select valid``, the
halving search); success is still judged on the test set only. A member whose loss or gradient
becomes NaN/inf stops with status ``diverged`` (the update is not applied, so the others are unaffected); at the
update cap the rest finish with ``success: false``.

Updates run ``train.log_every`` at a time inside one jitted ``lax.scan`` (one dispatch and one
host sync per interval), then one train event per member goes to its ``metrics.jsonl``:
``loss`` (mean), ``grad_norm`` (mean pre-clip global norm), ``grad_norm_p50/_p90/_max``,
``clipped`` (fraction of updates where clipping fired), ``clip_fraction`` (mean fraction of
parameter groups or units rescaled: per_layer_norm / agc), ``omega`` (if used). Test events
carry ``loss``, ``error_rate`` and, for real-valued tasks, ``mse``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rnnlm_jax import cells
from rnnlm_jax import optim
from rnnlm_jax.models import synthetic as model
from rnnlm_jax.synthetic import tasks as tasks_lib
from rnnlm_jax.loop import Diverged, Interrupted, RunBook, StopFlag, gradient_stats, \
    interrupted_reason, progress_bar
from rnnlm_jax.tasks import Task
from rnnlm_jax.workdir import DONE_STATES, Workdir, flatten

log = logging.getLogger("rnnlm_jax")

# Keys that may differ between the members of one vmapped group (numeric, shape-free).
VMAP_KEYS = ("seed", "optim.learning_rate", "optim.clip_value", "model.init_scale",
             "optim.omega_weight")


# ----------------------------------------------------------------------------- config


def validate_config(config) -> None:
  """Raise ``ValueError`` with a fix for anything wrong in a synthetic-task config."""
  tasks_lib.get_task(config.synthetic.problem, int(config.synthetic.length))
  model.validate(config.model, float(config.optim.omega_weight))
  if config.optim.name not in ("sgd", "adam"):
    raise ValueError(f"unknown optim.name {config.optim.name!r}; choose one of sgd, adam")
  if config.optim.clip_mode not in optim.CLIP_MODES:
    raise ValueError(f"unknown optim.clip_mode {config.optim.clip_mode!r}; choose one of "
                     f"{', '.join(optim.CLIP_MODES)}")
  if config.optim.clip_mode != "none" and not config.optim.clip_value > 0:
    raise ValueError(f"optim.clip_value must be > 0, got {config.optim.clip_value}")
  if not config.optim.learning_rate > 0:
    raise ValueError(f"optim.learning_rate must be > 0, got {config.optim.learning_rate}")
  if config.optim.omega_weight < 0:
    raise ValueError(f"optim.omega_weight must be >= 0, got {config.optim.omega_weight}")
  t = config.train
  for key in ("batch_size", "max_steps", "eval_every", "log_every", "checkpoint_every_steps"):
    if int(t[key]) <= 0:
      raise ValueError(f"train.{key} must be positive, got {t[key]}")
  size = int(config.synthetic.test_size)
  if size <= 0 or size % tasks_lib.TEST_CHUNK:
    raise ValueError(f"synthetic.test_size must be a positive multiple of {tasks_lib.TEST_CHUNK}, "
                     f"got {size}")
  valid = int(config.synthetic.get("valid_size", 0))
  if valid < 0 or valid % tasks_lib.TEST_CHUNK:
    raise ValueError(f"synthetic.valid_size must be 0 (no validation set) or a positive multiple "
                     f"of {tasks_lib.TEST_CHUNK}, got {valid}")
  rate = float(config.synthetic.success_error_rate)
  if not rate >= 0.0:  # 0: never succeeds (train to the cap); > 1: succeeds at the first test
    raise ValueError(f"synthetic.success_error_rate must be >= 0 (a test error rate below it is "
                     f"success), got {rate}")
  if not float(config.model.init_scale) >= 0.0:
    raise ValueError(f"model.init_scale must be >= 0, got {config.model.init_scale}")


def data_fingerprint(config) -> dict:
  """What identifies a synthetic run's data: the problem, the sequence length and the test-set
  size (training batches are drawn fresh from the seed at every update and the test set is a
  function of problem and length, :mod:`rnnlm_jax.synthetic.tasks`; there is no prepared data
  to hash and no generator version)."""
  out = {"task": "synthetic", "problem": str(config.synthetic.problem),
         "length": int(config.synthetic.length),
         "test_size": int(config.synthetic.test_size)}
  if int(config.synthetic.get("valid_size", 0)):  # absent when off: older fingerprints hold
    out["valid_size"] = int(config.synthetic.valid_size)
  return out


def vmap_group_key(config) -> str:
  """Runs with equal keys can be trained together in one vmapped program.

  Everything but :data:`VMAP_KEYS` must agree (and whether Omega is used at all, since that
  changes the program).
  """
  flat = {k: v for k, v in flatten(config.to_dict()).items() if k not in VMAP_KEYS}
  flat["uses_omega"] = float(config.optim.omega_weight) > 0
  return json.dumps(flat, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- one member's step


def _optimizer(optim_cfg, learning_rate, clip_value) -> optax.GradientTransformation:
  """A member's chain: clipping (``optim.clip_mode``) at its threshold, then its update rule
  (:func:`rnnlm_jax.optim.update_rule`); both values may be traced (per-member hypers)."""
  rule = optim.update_rule(optim_cfg.name, momentum=float(optim_cfg.momentum) or None)
  return optax.chain(optim.clip_by(optim_cfg.clip_mode, clip_value), rule(learning_rate))


def make_group_step(config, members: bool):
  """``step(states, hypers, active) -> (states, metrics)`` for K members (leading axis K).

  ``states = {"params", "opt_state", "step", "bad_step", "data_key"}`` stacked over members;
  ``hypers`` holds each member's numeric settings ``{"lr", "clip_value", "omega_weight"}``;
  ``active [K]`` is False for members that have stopped (their state is returned unchanged).

  The forward and backward pass run for all members at once with an explicit member axis
  (``members=True``): the loss is the sum of the members' losses, whose gradient w.r.t. the
  stacked parameters is each member's own gradient (their parameters are disjoint). Clipping
  and the optimizer update are ``jax.vmap``-ed per member. With ``members=False`` (K = 1) it is
  the plain single-model program.
  """
  task = tasks_lib.get_task(config.synthetic.problem)
  cell = cells.get_cell(config.model.cell)
  batch_size, length = int(config.train.batch_size), int(config.synthetic.length)
  use_omega = float(config.optim.omega_weight) > 0
  optim_cfg = config.optim

  def losses_fn(params, batch, eps=None):
    hs = model.hidden_states(cell, params, batch.x, eps, members=members)
    out = model.readout(params, hs, batch.t_out, members=members)
    losses = (jax.vmap(functools.partial(model.task_loss, task))(out, batch.y) if members
              else model.task_loss(task, out, batch.y))
    return jnp.sum(losses), (losses, hs)

  def omega_fn(w_hh, hs, g):
    if members:
      per = jax.vmap(functools.partial(model.omega, cell.name), (0, 1, 1))(w_hh, hs, g)
      return jnp.sum(per), per
    per = model.omega(cell.name, w_hh, hs, g)
    return per, per

  def update(state, grads, hyper, active, loss):
    params = state["params"]
    tx = _optimizer(optim_cfg, hyper["lr"], hyper["clip_value"])
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    stats = optim.clip_stats(opt_state)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(stats["grad_norm"])
    live = active & (state["bad_step"] < 0)
    go = live & finite
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(go, a, b), new, old)
    new_state = {
        "params": keep(new_params, params),
        "opt_state": keep(opt_state, state["opt_state"]),
        "step": state["step"] + go.astype(jnp.int32),
        "bad_step": jnp.where(live & ~finite, state["step"] + 1, state["bad_step"]),
        "data_key": state["data_key"],
    }
    return new_state, {k: stats[k] for k in ("grad_norm", "clipped", "clip_fraction")}

  def step(states, hypers, active):
    if not members:
      states, hypers, active = _unstack(states, 0), _unstack(hypers, 0), active[0]
    gen = lambda k, s: task.generate(jax.random.fold_in(k, s), batch_size, length)
    batch = (jax.vmap(gen)(states["data_key"], states["step"]) if members
             else gen(states["data_key"], states["step"]))
    params = states["params"]
    if use_omega:
      T, H = batch.x.shape[-2], params["cell"]["w_hh"].shape[-2]
      members_axis = (batch.x.shape[0],) if members else ()
      eps = jnp.zeros((T,) + members_axis + (batch_size, H), jnp.float32)
      (_, (losses, hs)), (grads, g) = jax.value_and_grad(
          losses_fn, argnums=(0, 2), has_aux=True)(params, batch, eps)
      hs, g = jax.lax.stop_gradient(hs), jax.lax.stop_gradient(g)
      (_, om), om_grad = jax.value_and_grad(omega_fn, has_aux=True)(
          params["cell"]["w_hh"], hs, g)
      weight = hypers["omega_weight"][:, None, None] if members else hypers["omega_weight"]
      grads["cell"]["w_hh"] = grads["cell"]["w_hh"] + weight * om_grad
    else:
      (_, (losses, _)), grads = jax.value_and_grad(losses_fn, has_aux=True)(params, batch)
      om = jnp.zeros_like(losses)
    if members:
      states, stats = jax.vmap(update)(states, grads, hypers, active, losses)
    else:
      states, stats = update(states, grads, hypers, active, losses)
    metrics = {"loss": losses, "omega": om, **stats}
    if not members:
      states, metrics = jax.tree.map(lambda x: x[None], (states, metrics))
    return states, metrics

  return step


def init_member_state(config) -> dict:
  """A member's initial state (host-side init; see :func:`make_group_step`)."""
  task = tasks_lib.get_task(config.synthetic.problem)
  root = jax.random.PRNGKey(int(config.seed))
  params = model.init_params(jax.random.fold_in(root, 0), task, config.model)
  tx = _optimizer(config.optim, float(config.optim.learning_rate),
                  float(config.optim.clip_value))
  return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32),
          "bad_step": jnp.full((), -1, jnp.int32), "data_key": jax.random.fold_in(root, 1)}


def _hyper(config) -> dict:
  return {"lr": jnp.float32(config.optim.learning_rate),
          "clip_value": jnp.float32(config.optim.clip_value),
          "omega_weight": jnp.float32(config.optim.omega_weight)}


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, k: int):
  return jax.tree.map(lambda x: x[k], tree)


def make_train_chunk(config, vmapped: bool):
  """``chunk(states, hypers, active, n) -> (states, metrics [n, K])``: ``n`` updates, jitted.

  ``states``/``hypers`` are stacked over members (leading axis K). With ``vmapped=False``
  (K must be 1) it is the plain sequential program.
  """
  stepper = make_group_step(config, members=vmapped)

  @functools.partial(jax.jit, static_argnums=3, donate_argnums=0)
  def chunk(states, hypers, active, n):
    return jax.lax.scan(lambda s, _: stepper(s, hypers, active), states, None, length=n)

  return chunk


def make_evaluate(config, vmapped: bool, split: str = "test"):
  """``evaluate(params [K, ...]) -> {"loss", "error_rate", "mse"} [K]`` on the fixed test set
  (``split`` "test") or validation set ("valid", ``synthetic.valid_size`` sequences)."""
  task = tasks_lib.get_task(config.synthetic.problem)
  cell = cells.get_cell(config.model.cell)
  length = int(config.synthetic.length)
  size = int(config.synthetic.test_size if split == "test" else config.synthetic.valid_size)
  n_chunks = size // tasks_lib.TEST_CHUNK
  key = (tasks_lib.test_key if split == "test" else tasks_lib.valid_key)(task.name, length)

  def member_eval(params, batch):
    hs = model.hidden_states(cell, params, batch.x)
    out = model.readout(params, hs, batch.t_out)
    mse = jnp.mean((out[..., 0] - batch.y) ** 2) if task.kind == "real" else jnp.float32(0)
    return model.task_loss(task, out, batch.y), jnp.mean(task.errors(out, batch.y)), mse

  batched = jax.vmap(member_eval, in_axes=(0, None)) if vmapped else (
      lambda p, b: jax.tree.map(lambda x: x[None], member_eval(_unstack(p, 0), b)))

  @jax.jit
  def evaluate(params):
    def body(acc, i):
      batch = task.generate(jax.random.fold_in(key, i), tasks_lib.TEST_CHUNK, length)
      return jax.tree.map(jnp.add, acc, batched(params, batch)), None
    k = jax.tree.leaves(params)[0].shape[0]
    zeros = (jnp.zeros(k), jnp.zeros(k), jnp.zeros(k))
    (loss, err, mse), _ = jax.lax.scan(body, zeros, jnp.arange(n_chunks))
    return {"loss": loss / n_chunks, "error_rate": err / n_chunks, "mse": mse / n_chunks}

  return evaluate


# ----------------------------------------------------------------------------- the group loop


class _Member:
  """One member's run: its workdir, its provenance entry and its records, kept by
  :class:`rnnlm_jax.loop.RunBook` as every run's are; its ``meta`` also holds the step at
  which it solved the problem (``success_step``) and the last test ``error_rate``."""

  def __init__(self, config, workdir: str):
    self.config = config
    self.wd = Workdir(workdir)
    self.book: RunBook | None = None
    self.prov = None

  @property
  def success_step(self) -> int | None:
    return self.book.meta.get("success_step")

  @property
  def last_error(self) -> float | None:
    return self.book.meta.get("error_rate")

  def open(self, state_template) -> dict:
    """Lock the workdir, write the config, start the provenance entry, resume (or start) the
    run."""
    self.wd.acquire()
    self.wd.write_config(self.config.to_dict())
    self.wd.record_data(data_fingerprint(self.config))  # its config already pins its data
    self.prov = self.wd.start_provenance()
    self.book = RunBook(self.wd, keep=int(self.config.train.checkpoint_keep))
    state, _ = self.book.resume(state_template)
    self.wd.write_status("running", int(state["step"]), None)
    return state

  def record_test(self, event: dict, step: int) -> bool:
    """Write a test event; ``True`` if it solves the problem (``synthetic.success_error_rate``)."""
    self.book.write(event)
    self.book.meta["error_rate"] = event["error_rate"]
    if event["error_rate"] < float(self.config.synthetic.success_error_rate):
      self.book.meta["success_step"] = step
      return True
    return False

  def write_status(self, state_name: str, step: int, reason: str = "") -> None:
    self.wd.write_status(state_name, step, None, reason, success=self.success_step is not None,
                         success_step=self.success_step, error_rate=self.last_error)

  def finish(self, state_name: str, step: int, reason: str = "", outcome: str | None = None):
    self.write_status(state_name, step, reason)
    self.close(outcome or state_name)

  def close(self, outcome: str) -> None:
    if self.book is not None:
      self.book.close()
      self.book = None
    if self.prov is not None:
      self.wd.end_provenance(self.prov, outcome=outcome)
      self.prov = None
    self.wd.release()


def _train_event(step: int, m: dict, k: int, n: int, use_omega: bool,
                 steps_per_sec: float | None) -> dict:
  """Member ``k``'s train event for the last ``n`` updates (``m``: arrays ``[n, K]``);
  ``steps_per_sec``: the group's updates per second (``None`` for an interval that compiled)."""
  got = [{key: m[key][i, k] for key in ("grad_norm", "clipped", "clip_fraction")}
         for i in range(n)]
  loss = np.asarray(m["loss"][:n, k], np.float64)
  event = {"step": step, "split": "train", "loss": float(loss.mean()), **gradient_stats(got),
           "steps_per_sec": steps_per_sec}
  if use_omega:
    event["omega"] = float(np.mean(m["omega"][:n, k]))
  return event


def vmap_pays() -> bool:
  """Whether one program for a whole group is faster here than one run after another.

  Measured (scripts/bench_sweep_vmap.py, experiments/pascanu2013/README.md): on a single CPU
  device the group program costs 0.87-1.08x the plain one per run-update (the work is
  arithmetic that batching cannot share), with the group split over 2 CPU devices it is
  1.42-1.59x faster; on accelerators batching is what they are for.
  """
  return jax.device_count() > 1 or jax.default_backend() != "cpu"


def train_group(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
                vmap: bool | str = "auto") -> list[dict]:
  """Train the runs ``configs[i]`` in ``workdirs[i]`` together; returns their status dicts.

  The configs must share :func:`vmap_group_key`. ``vmap=True`` trains them in one program;
  with ``vmap=False`` they are trained one after the other, each as its own (non-vmapped)
  program compiled once for the group; ``"auto"`` picks by :func:`vmap_pays`. Runs whose status is already
  finished or diverged are not touched. Raises :class:`rnnlm_jax.loop.Interrupted` on
  SIGINT/SIGTERM after saving every member.
  """
  if len(configs) != len(workdirs):
    raise ValueError(f"{len(configs)} configs but {len(workdirs)} workdirs")
  for c in configs:
    validate_config(c)
  keys = {vmap_group_key(c) for c in configs}
  if len(keys) > 1:
    raise ValueError("these runs differ in more than the vmappable keys "
                     f"({', '.join(VMAP_KEYS)}); train them in separate groups")
  for c, w in zip(configs, workdirs):
    Workdir(w).check_config(c.to_dict())
  if vmap == "auto":
    vmap = vmap_pays()
  if not vmap and len(configs) > 1:
    return [train_group([c], [w], vmap=False)[0] for c, w in zip(configs, workdirs)]

  results: list[dict | None] = [None] * len(configs)
  todo = []
  for i, (c, w) in enumerate(zip(configs, workdirs)):
    status = Workdir(w).read_status()
    if status and status["state"] in DONE_STATES:
      results[i] = status
    else:
      todo.append(i)
  if not todo:
    return results

  members = [_Member(configs[i], workdirs[i]) for i in todo]
  states = []
  try:
    for m in members:
      states.append(m.open(init_member_state(m.config)))
  except BaseException:  # e.g. a member's workdir held by another process: release the others
    for m in members:
      m.close("failed")
    raise
  steps = {int(s["step"]) for s in states}
  if len(steps) > 1:  # members restored at different steps: run each on its own
    for m in members:
      m.close("regrouped")
    for i in todo:
      results[i] = train_group([configs[i]], [workdirs[i]], vmap=False)[0]
    return results
  vmapped = bool(vmap) and len(members) > 1
  if vmapped:  # one process window for all: rnnlm_jax.report.cost counts the group once
    group_id = uuid.uuid4().hex[:12]
    for m in members:
      m.wd.note_provenance(vmap_group=group_id)
  out = _run_group(members, states, vmapped=vmapped)
  for i, status in zip(todo, out):
    results[i] = status
  return results


_PROGRAMS: dict = {}


def _programs(group_key: str, vmapped: bool, config):
  """The jitted train chunk, test evaluation and validation (None without a validation set)
  of a group, built once per (group key, layout).

  Everything a group's members may differ in is an input of these programs (see
  :data:`VMAP_KEYS`), so one compiled program serves every point of a sweep that shares the
  key: a sequential sweep compiles once, not once per point.
  """
  key = (group_key, vmapped)
  if key not in _PROGRAMS:
    valid = (make_evaluate(config, vmapped, "valid")
             if int(config.synthetic.get("valid_size", 0)) else None)
    _PROGRAMS[key] = (make_train_chunk(config, vmapped), make_evaluate(config, vmapped), valid)
  return _PROGRAMS[key]


def _place_members(states: list[dict], hypers: list[dict], vmapped: bool):
  """Stack the members; with several JAX devices, split the member axis across them.

  On a CPU host, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (``rnnlm-sweep
  --cpu_devices=N``) makes N devices that XLA runs on separate threads, so a vmapped group uses
  N cores. The member axis is padded with copies of member 0 that never train (inactive) to a
  multiple of the device count. Returns ``(stacked states, stacked hypers, active [K+pad],
  place)`` where ``place(x)`` puts a member-axis array where the states are.
  """
  n_dev = jax.device_count()
  pad = (-len(states)) % n_dev if vmapped and n_dev > 1 else 0
  stacked = _stack(states + [states[0]] * pad)
  hyper = _stack(hypers + [hypers[0]] * pad)
  active = np.array([True] * len(states) + [False] * pad)
  if not vmapped or n_dev == 1:
    return stacked, hyper, active, lambda x: x
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ("members",)), PartitionSpec("members"))
  place = lambda tree: jax.device_put(tree, sharding)
  return place(stacked), place(hyper), active, place


def _run_group(members: list[_Member], states: list[dict], vmapped: bool) -> list[dict]:
  config = members[0].config
  t = config.train
  K = len(members)
  use_omega = float(config.optim.omega_weight) > 0
  max_steps, log_every = int(t.max_steps), int(t.log_every)
  eval_every, ckpt_every = int(t.eval_every), int(t.checkpoint_every_steps)
  chunk, evaluate, evaluate_valid = _programs(vmap_group_key(config), vmapped, config)
  stacked, hypers, active, place = _place_members(
      states, [_hyper(m.config) for m in members], vmapped)
  step = int(states[0]["step"])
  label = f"{config.synthetic.problem} L={config.synthetic.length} {config.model.cell}"
  log.info("%s: %d run(s)%s, %d/%d updates done", label, K, " vmapped" if vmapped else "",
           step, max_steps)

  real_valued = tasks_lib.get_task(config.synthetic.problem).kind == "real"

  def split_event(res, k, split, step_now):
    event = {"step": step_now, "split": split, "loss": float(res["loss"][k]),
             "error_rate": float(res["error_rate"][k])}
    if real_valued:
      event["mse"] = float(res["mse"][k])
    return event

  def do_eval(step_now):
    valid = jax.device_get(evaluate_valid(stacked["params"])) if evaluate_valid else None
    res = jax.device_get(evaluate(stacked["params"]))
    for k, m in enumerate(members):
      if not active[k]:
        continue
      if valid is not None:
        m.book.write(split_event(valid, k, "valid", step_now))
      if m.record_test(split_event(res, k, "test", step_now), step_now):
        m.book.save(_unstack(stacked, k))
        m.finish("finished", step_now, f"solved: test error {m.last_error:.4f} at step {step_now}")
        active[k] = False
    errs = " ".join(f"{float(e):.3f}" for e in res["error_rate"][:K])
    log.info("%s step %d test error: %s (%d running)", label, step_now, errs, int(active.sum()))

  bar = progress_bar(max_steps, step, bool(t.get("progress_bar", True)), desc=label)
  t0, steps0 = time.perf_counter(), step
  try:
    with StopFlag() as stop:
      compiled = False  # the first interval's time includes compilation
      while step < max_steps and active.any():
        n = min(log_every - step % log_every, max_steps - step)
        t_chunk = time.perf_counter()
        stacked, metrics = chunk(stacked, hypers, place(jnp.asarray(active)), n)
        metrics = jax.device_get(metrics)
        interval_rate = n / (time.perf_counter() - t_chunk) if compiled else None
        compiled = True
        bad = np.asarray(jax.device_get(stacked["bad_step"]))
        step += n
        bar.update(n)
        for k, m in enumerate(members):
          if not active[k]:
            continue
          m.book.write(_train_event(step, metrics, k, n, use_omega, interval_rate))
          if bad[k] >= 0:
            reason = f"non-finite loss or gradient at step {int(bad[k])}"
            m.book.save(_unstack(stacked, k))
            m.finish("diverged", int(bad[k]), reason)
            active[k] = False
            log.info("%s member %d diverged: %s", label, k, reason)
        rate = (step - steps0) * K / max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix_str(f"{int(active.sum())}/{K} running, {rate:,.0f} run-updates/s")
        if step % eval_every == 0 or step == max_steps:
          do_eval(step)
        if step % ckpt_every == 0 or step == max_steps:
          for k, m in enumerate(members):
            if active[k]:
              m.book.save(_unstack(stacked, k))
              m.write_status("running", step)
        if stop.signum is not None and step < max_steps and active.any():
          reason = interrupted_reason(stop.signum, step)
          for k, m in enumerate(members):
            if active[k]:
              m.book.save(_unstack(stacked, k))
              m.finish("interrupted", step, reason)
          raise Interrupted(reason)
  except Interrupted:
    raise
  except BaseException as e:
    reason = f"{type(e).__name__}: {e}".splitlines()[0]
    for k, m in enumerate(members):
      if active[k]:
        m.finish("failed", step, reason)
    raise
  finally:
    bar.close()
  for k, m in enumerate(members):
    if active[k]:
      m.finish("finished", step, f"update cap {max_steps} reached without success")
  log.info("%s done: %.1f s for %d run-updates", label, time.perf_counter() - t0,
           (step - steps0) * K)
  return [m.wd.read_status() for m in members]


def train_and_evaluate(config, workdir: str) -> dict:
  """Single-run entry (``rnnlm-train`` with a synthetic config): a group of one."""
  status = train_group([config], [workdir], vmap=False)[0]
  if status["state"] == "diverged":
    raise Diverged(status["reason"])
  return status


def evaluate_workdir(workdir: str, split: str = "test", checkpoint: str = "best",
                     text: str | None = None) -> dict:
  """The last test-set event of a synthetic run (its runs evaluate a fixed test set while
  training; there is no other split)."""
  if text or split != "test":
    raise ValueError("synthetic runs have a test set only: use --split test without --text")
  events = [e for e in Workdir(workdir).read_metrics() if e.get("split") == "test"]
  if not events:
    raise FileNotFoundError(f"{workdir} has no test evaluation yet; train first")
  return {"source": "test", "checkpoint": "latest", **events[-1]}


TASK = Task(name="synthetic", validate_config=validate_config, make_run=None,
            evaluate_workdir=evaluate_workdir, select_metric="error_rate", select_mode="min",
            train_and_evaluate=train_and_evaluate, group_key=vmap_group_key,
            train_group=train_group)
