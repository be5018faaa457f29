"""Optimisers, learning-rate schedules and gradient clipping.

Clipping is an Optax transformation, the first link of every optimizer's chain
(``optax.chain(clip_by(mode, value), optimizer)``, built by :func:`make_optimizer` for every task
and :func:`update_rule` for the synthetic groups' traced learning rates). Its state,
:class:`ClipState`, carries the last update's pre-clip global norm, whether clipping fired and
the fraction of groups rescaled, so every task logs the same clip statistics
(:func:`clip_stats`). The clipping itself is the pure function :func:`clip_gradients`. Modes
(``optim.clip_mode``):

* ``none``        - gradients unchanged.
* ``global_norm`` - rescale all gradients by ``min(1, clip_value / ||g||_2)`` (Pascanu et al.
  2013; Zaremba et al. 2014 with 5; pytorch/examples with 0.25).
* ``value``       - clamp every element to ``[-clip_value, clip_value]`` (Mikolov's RNNLM).
* ``per_layer_norm`` - rescale each parameter *group* on its own by
  ``min(1, clip_value / ||g_group||_2)``, where ``||g_group||_2`` is the L2 norm over all the arrays
  of the group. Groups: the array leaves of a dict whose values are all arrays (an "innermost
  dict": one RNN layer's ``{w_ih, w_hh, b_ih, b_hh}``, the head ``{w, b}``) form one group; every
  other array leaf (e.g. ``embed``, or an array inside a list) is a group of its own.
* ``agc``         - adaptive gradient clipping (Brock, De, Smith & Simonyan 2021, eq. 3), unit-wise:
  ``G_i <- lambda * max(||W_i||, eps) / ||G_i|| * G_i`` wherever
  ``||G_i|| / max(||W_i||, eps) > lambda``, with ``lambda = clip_value``, ``eps = 1e-3`` and
  ``W`` the current parameters. Units (weights are laid out ``[in, out]``): for an array of rank
  >= 2 a unit is one output slice ``W[..., j]`` (norms reduce over all axes but the last); a
  scalar or 1-D array (a bias) is a single unit, its whole-vector norm. This is the reference
  ``unitwise_norm`` of the NFNets code and of ``optax.adaptive_grad_clip`` (which differ only
  for arrays with size-1 axes, e.g. ``[1, N]``, that they treat as vectors).

:func:`clip_gradients` also reports ``clip_fraction``: the fraction of groups (``per_layer_norm``)
or units (``agc``) rescaled; for ``global_norm`` and ``value`` it equals ``clipped``.

Learning-rate schedules (``optim.schedule``):

* ``constant``  - ``optim.learning_rate`` throughout.
* ``zaremba``   - held for ``optim.lr_hold_epochs`` epochs, then multiplied by ``optim.lr_decay``
  every epoch: ``lr(epoch) = lr * decay ** max(epoch + 1 - hold, 0)`` (epoch counted from 0).
* ``plateau``   - divided by ``optim.plateau_factor`` whenever the validation loss does not
  improve on the best so far (pytorch/examples). Applied by the training loop through
  :func:`set_learning_rate`; the value lives in the optimizer state, so it is checkpointed.

NT-ASGD (``optim.name="ntasgd"``, Merity, Keskar & Socher 2017): SGD (with ``optim.momentum``
if set) that also keeps the running average of the parameters once averaging has started.
The training loop starts it (:func:`should_start_averaging`, :func:`start_averaging`) at the
first validation whose loss is worse than the best of all validations more than
``optim.nonmono`` validations ago; from then on the average of the parameters after every
update is kept, and evaluation, checkpoint selection, the test and sampling use it
(:func:`eval_params`); training itself continues from the raw parameters. The average, its
count and the switch live in the optimizer state, so they are checkpointed.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

CLIP_MODES = ("none", "global_norm", "value", "per_layer_norm", "agc")
AGC_EPS = 1e-3  # floor on the unit parameter norm in agc (Brock et al. 2021)
OPTIMIZERS = ("sgd", "adam", "rmsprop", "ntasgd")
SCHEDULES = ("constant", "zaremba", "plateau")
LOSS_REDUCTIONS = ("sum_time", "mean")


def validate(optim_cfg) -> None:
  """Raise ``ValueError`` with a one-line fix for an invalid ``config.optim``."""
  checks = [("name", OPTIMIZERS), ("clip_mode", CLIP_MODES), ("schedule", SCHEDULES),
            ("loss_reduction", LOSS_REDUCTIONS)]
  for key, allowed in checks:  # schedule / loss_reduction: optional (default: the first)
    value = optim_cfg.get(key, allowed[0]) if key in ("schedule", "loss_reduction") else (
        optim_cfg[key])
    if value not in allowed:
      raise ValueError(f"unknown optim.{key} {value!r}; choose one of {', '.join(allowed)}")
  if optim_cfg.clip_mode != "none" and not optim_cfg.clip_value > 0:
    raise ValueError(f"optim.clip_value must be > 0 with clip_mode={optim_cfg.clip_mode!r}, "
                     f"got {optim_cfg.clip_value}")
  if not optim_cfg.learning_rate > 0:
    raise ValueError(f"optim.learning_rate must be > 0, got {optim_cfg.learning_rate}")
  if optim_cfg.name == "ntasgd" and int(optim_cfg.get("nonmono", 5)) < 1:
    raise ValueError(f"optim.nonmono must be >= 1 (validations) with optim.name='ntasgd', got "
                     f"{optim_cfg.get('nonmono')}")
  if optim_cfg.name == "ntasgd" and float(optim_cfg.get("weight_decay", 0.0)):
    raise ValueError("optim.weight_decay is not supported with optim.name='ntasgd'; use "
                     "optim.name='sgd' (L2) or 'adam' (AdamW)")
  if not float(optim_cfg.get("weight_decay", 0.0)) >= 0.0:
    raise ValueError(f"optim.weight_decay must be >= 0 (0 = off), got "
                     f"{optim_cfg.get('weight_decay')}")
  for key in ("ar", "tar"):
    if not float(optim_cfg.get(key, 0.0)) >= 0.0:
      raise ValueError(f"optim.{key} must be >= 0 (0 = off), got {optim_cfg.get(key)}")


def _sq_norm(x) -> jax.Array:
  return jnp.sum(jnp.square(x.astype(jnp.float32)))


def _layer_groups(grads) -> tuple[list, list[int], int]:
  """Leaves of ``grads``, the group id of each, and the group count (see ``per_layer_norm``)."""
  path_leaves, _ = jax.tree_util.tree_flatten_with_path(grads)
  paths = [tuple(path) for path, _ in path_leaves]
  not_innermost = {path[:k] for path in paths for k in range(len(path) - 1)}
  ids: dict = {}
  group_of = []
  for path in paths:
    parent = path[:-1]
    in_dict = bool(path) and isinstance(path[-1], jax.tree_util.DictKey)
    key = ("dict", parent) if in_dict and parent not in not_innermost else ("leaf", path)
    group_of.append(ids.setdefault(key, len(ids)))
  return [leaf for _, leaf in path_leaves], group_of, len(ids)


def _clip_per_layer(grads, clip_value):
  leaves, group_of, n_groups = _layer_groups(grads)
  sq = [jnp.zeros((), jnp.float32) for _ in range(n_groups)]
  for g, k in zip(leaves, group_of):
    sq[k] = sq[k] + _sq_norm(g)
  norms = jnp.sqrt(jnp.stack(sq)) if n_groups else jnp.zeros((0,), jnp.float32)
  fired = norms > clip_value
  scale = jnp.where(fired, clip_value / jnp.where(fired, norms, 1.0), 1.0)
  treedef = jax.tree.structure(grads)
  new = [g * scale[k].astype(g.dtype) for g, k in zip(leaves, group_of)]
  return jax.tree.unflatten(treedef, new), fired


def _unit_norm(x) -> jax.Array:
  """L2 norm of each unit of ``x`` (see ``agc``), with ``x``'s rank (size-1 reduced axes)."""
  axes = tuple(range(x.ndim - 1)) if x.ndim >= 2 else None
  return jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=axes, keepdims=True))


def _clip_agc(grads, params, clip_value):
  g_leaves, treedef = jax.tree.flatten(grads)
  p_leaves = treedef.flatten_up_to(params)
  out, fired = [], []
  for g, p in zip(g_leaves, p_leaves):
    g_norm = _unit_norm(g)
    max_norm = clip_value * jnp.maximum(_unit_norm(p), AGC_EPS)
    hit = g_norm > max_norm
    scale = jnp.where(hit, max_norm / jnp.where(hit, g_norm, 1.0), 1.0)
    out.append(g * scale.astype(g.dtype))
    fired.append(hit)
  return jax.tree.unflatten(treedef, out), fired


def clip_gradients(grads, mode: str, clip_value: float, params=None):
  """Clip ``grads`` (a pytree) and report what happened; modes as in the module docstring.

  Args:
    grads: the gradient pytree.
    mode: one of :data:`CLIP_MODES`.
    clip_value: the threshold (a norm, an element value, or agc's ratio ``lambda``).
    params: the parameters ``grads`` is the gradient of (same structure); required by ``agc``,
      ignored by the other modes.

  Returns:
    ``(clipped grads, stats)`` with float32 scalar ``stats``: ``grad_norm`` (pre-clip global L2
    norm), ``clipped`` (1.0 if clipping changed the gradient - for ``per_layer_norm`` / ``agc``,
    if any group / unit was rescaled - else 0.0) and ``clip_fraction`` (the fraction of groups /
    units rescaled; equal to ``clipped`` for ``global_norm`` and ``value``, 0 for ``none``).
  """
  norm = optax.tree.norm(grads)
  zero = jnp.zeros((), jnp.float32)
  if mode == "none":
    return grads, {"grad_norm": norm, "clipped": zero, "clip_fraction": zero}
  if mode == "global_norm":
    fired = norm > clip_value
    scale = jnp.where(fired, clip_value / norm, 1.0)
    grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)
  elif mode == "value":
    leaves = jax.tree.leaves(grads)
    fired = jnp.any(jnp.stack([jnp.any(jnp.abs(g) > clip_value) for g in leaves]))
    grads = jax.tree.map(lambda g: jnp.clip(g, -clip_value, clip_value), grads)
  elif mode == "per_layer_norm":
    grads, fired_groups = _clip_per_layer(grads, clip_value)
    fired = jnp.any(fired_groups)
    fraction = jnp.mean(fired_groups.astype(jnp.float32)) if fired_groups.size else zero
    return grads, {"grad_norm": norm, "clipped": fired.astype(jnp.float32),
                   "clip_fraction": fraction}
  elif mode == "agc":
    if params is None:
      raise ValueError("optim.clip_mode='agc' needs the parameters: call "
                       "clip_gradients(grads, 'agc', clip_value, params=params)")
    grads, fired_units = _clip_agc(grads, params, clip_value)
    n_fired = sum((jnp.sum(f.astype(jnp.float32)) for f in fired_units), zero)
    n_units = sum(f.size for f in fired_units)
    fraction = n_fired / n_units if n_units else zero
    return grads, {"grad_norm": norm, "clipped": (n_fired > 0).astype(jnp.float32),
                   "clip_fraction": fraction}
  else:
    raise ValueError(f"unknown optim.clip_mode {mode!r}; choose one of {', '.join(CLIP_MODES)}")
  fired = fired.astype(jnp.float32)
  return grads, {"grad_norm": norm, "clipped": fired, "clip_fraction": fired}


class ClipState(NamedTuple):
  """State of :func:`clip_by`: the statistics of the last update (float32 scalars, see
  :func:`clip_gradients`)."""

  grad_norm: jax.Array
  clipped: jax.Array
  clip_fraction: jax.Array


def clip_by(mode: str, clip_value) -> optax.GradientTransformationExtraArgs:
  """Gradient clipping as an Optax transformation (modes as in the module docstring); ``agc``
  needs ``params`` in ``update``. ``clip_value`` may be a traced scalar (per-member values of
  a vmapped group)."""

  def init(params):
    del params
    zero = jnp.zeros((), jnp.float32)
    return ClipState(zero, zero, zero)

  def update(grads, state, params=None, **extra_args):
    del state, extra_args
    grads, stats = clip_gradients(grads, mode, clip_value, params)
    return grads, ClipState(**stats)

  return optax.GradientTransformationExtraArgs(init, update)


def clip_stats(opt_state) -> dict:
  """The clip statistics of the update that produced ``opt_state`` (a chain led by
  :func:`clip_by`): ``grad_norm``, ``clipped``, ``clip_fraction``."""
  return opt_state[0]._asdict()


def _with_optimizer_state(opt_state, inner):
  return (opt_state[0], inner)


def strip_clip_state(opt_state):
  """The state of the optimizer behind the clipping link of the chain: also the layout of
  optimizer states saved before clipping joined the chain (:mod:`rnnlm_jax.checkpoint`
  restores those)."""
  return opt_state[1]


def add_clip_state(inner_state):
  """The inverse of :func:`strip_clip_state` (statistics zero until the next update)."""
  zero = jnp.zeros((), jnp.float32)
  return (ClipState(zero, zero, zero), inner_state)


def learning_rate_schedule(optim_cfg, steps_per_epoch: int):
  """The schedule as a function of the update count, or a float for constant / plateau."""
  lr = float(optim_cfg.learning_rate)
  if optim_cfg.get("schedule", "constant") != "zaremba":
    return lr
  hold, decay = int(optim_cfg.lr_hold_epochs), float(optim_cfg.lr_decay)

  def schedule(count):
    epoch = count // steps_per_epoch
    return lr * decay ** jnp.maximum(epoch + 1 - hold, 0).astype(jnp.float32)

  return schedule


def update_rule(name: str, momentum: float | None = None, rmsprop_decay: float = 0.9):
  """The factory ``learning_rate -> optax.GradientTransformation`` of ``optim.name`` (no
  clipping, no weight decay): SGD (with momentum), Adam, RMSProp (Tieleman & Hinton 2012, as in
  Chung et al. 2014) or NT-ASGD. Wrapped as it is by ``optax.inject_hyperparams`` (whose
  injected values, e.g. Adam's b1/b2/eps as float32 arrays, and state layout depend on the
  factory's signature: keep these factories as they are, or saved runs stop resuming exactly)."""
  if name == "sgd":
    return functools.partial(optax.sgd, momentum=momentum)
  if name == "rmsprop":
    return functools.partial(optax.rmsprop, decay=rmsprop_decay, momentum=momentum)
  if name == "adam":
    return optax.adam
  if name == "ntasgd":  # Merity et al. 2017; averaging is switched on by the loop
    return functools.partial(ntasgd, momentum=momentum)
  raise ValueError(f"unknown optim.name {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def make_optimizer(optim_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
  """``optax.chain(clip_by(optim.clip_mode, optim.clip_value), optimizer)``: the update rule
  of ``optim.name`` (:func:`update_rule`) with the learning rate (schedule) exposed as a
  hyperparam. ``optim.weight_decay``: decoupled for Adam (AdamW), an L2 gradient term for SGD
  and RMSProp (added after clipping)."""
  validate(optim_cfg)
  lr = learning_rate_schedule(optim_cfg, steps_per_epoch)
  momentum = float(optim_cfg.get("momentum", 0.0)) or None
  weight_decay = float(optim_cfg.get("weight_decay", 0.0))
  name = optim_cfg.name
  rule = update_rule(name, momentum, float(optim_cfg.get("rmsprop_decay", 0.9)))
  if name == "ntasgd":  # momentum injected too (the state layout of saved runs)
    inner = optax.inject_hyperparams(ntasgd)(learning_rate=lr, momentum=momentum)
  elif name == "adam" and weight_decay:
    inner = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=weight_decay)
  elif weight_decay:  # sgd, rmsprop
    # L2 regularisation: weight_decay * param added to the gradient (after clipping), the
    # gradient of the penalty weight_decay / 2 * ||param||^2 (flax examples/sst2's recipe).
    inner = optax.inject_hyperparams(lambda learning_rate: optax.chain(
        optax.add_decayed_weights(weight_decay), rule(learning_rate)))(learning_rate=lr)
  else:
    inner = optax.inject_hyperparams(rule)(learning_rate=lr)
  return optax.chain(clip_by(optim_cfg.clip_mode, float(optim_cfg.clip_value)), inner)


def get_learning_rate(opt_state) -> jax.Array:
  """The learning rate used by the last update (a scalar)."""
  return strip_clip_state(opt_state).hyperparams["learning_rate"]


def set_learning_rate(opt_state, value: float):
  """A copy of ``opt_state`` whose (constant) learning rate is ``value``."""
  inner = strip_clip_state(opt_state)
  hyper = dict(inner.hyperparams)
  hyper["learning_rate"] = jnp.asarray(value, hyper["learning_rate"].dtype)
  return _with_optimizer_state(opt_state, inner._replace(hyperparams=hyper))


# ----------------------------------------------------------------------------- NT-ASGD


class NTASGDState(NamedTuple):
  """State of :func:`ntasgd`: the SGD state, the parameter average, how many updates it
  averages (int32 scalar) and whether averaging is on (int32 0/1)."""

  sgd: optax.OptState
  avg: optax.Params
  count: jax.Array
  active: jax.Array


def ntasgd(learning_rate, momentum: float | None = None) -> optax.GradientTransformation:
  """SGD that averages the parameters after each update once :func:`start_averaging` is called.

  While ``active``, each update sets ``avg <- avg + (p_new - avg) / (count + 1)`` with
  ``p_new = params + updates``, i.e. ``avg`` is the mean of the parameters after every update
  since averaging started (PyTorch's ``ASGD(t0=0, lambd=0)`` as used by AWD-LSTM). The updates
  themselves are plain SGD's. ``update`` needs ``params`` (flax's ``TrainState`` passes them).
  """
  sgd = optax.sgd(learning_rate, momentum)

  def init(params):
    return NTASGDState(sgd.init(params), jax.tree.map(jnp.zeros_like, params),
                       jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("ntasgd needs the parameters: call update(grads, state, params)")
    updates, sgd_state = sgd.update(grads, state.sgd, params)
    on = state.active > 0
    count = state.count + on.astype(jnp.int32)
    step = 1.0 / jnp.maximum(count, 1).astype(jnp.float32)
    avg = jax.tree.map(
        lambda a, p, u: jnp.where(on, a + (p + u - a) * step.astype(a.dtype), a),
        state.avg, params, updates)
    return updates, NTASGDState(sgd_state, avg, count, state.active)

  return optax.GradientTransformation(init, update)


def _ntasgd_state(opt_state) -> NTASGDState | None:
  inner = getattr(strip_clip_state(opt_state), "inner_state", None)
  return inner if isinstance(inner, NTASGDState) else None


def start_averaging(opt_state):
  """A copy of an NT-ASGD ``opt_state`` with averaging switched on (an empty average)."""
  inner = _ntasgd_state(opt_state)
  if inner is None:
    raise ValueError("start_averaging needs the state of optim.name='ntasgd'")
  inner = inner._replace(avg=jax.tree.map(jnp.zeros_like, inner.avg),
                         count=jnp.zeros_like(inner.count), active=jnp.ones_like(inner.active))
  hyper_state = strip_clip_state(opt_state)
  return _with_optimizer_state(opt_state, hyper_state._replace(inner_state=inner))


def averaging_active(opt_state) -> bool:
  """Whether ``opt_state`` is NT-ASGD's with averaging on (False for every other optimizer)."""
  inner = _ntasgd_state(opt_state)
  return inner is not None and bool(jax.device_get(inner.active) > 0)


def eval_params(opt_state, params):
  """The parameters to evaluate: NT-ASGD's average once it averages at least one update, else
  ``params`` itself (every other optimizer)."""
  inner = _ntasgd_state(opt_state)
  if inner is None:
    return params
  use = (inner.active > 0) & (inner.count > 0)
  return jax.tree.map(lambda a, p: jnp.where(use, a, p), inner.avg, params)


def should_start_averaging(history: list, loss: float, nonmono: int) -> bool:
  """AWD-LSTM's non-monotone trigger: ``len(history) > nonmono and loss > min(history[:-nonmono])``
  where ``history`` holds the earlier validation losses (not ``loss`` itself)."""
  return len(history) > nonmono and loss > min(history[:-nonmono])
