"""Optimisers, learning-rate schedules and gradient clipping.

Clipping is done outside the Optax chain, by :func:`clip_gradients`, so the train step can log
the pre-clip global norm and whether clipping fired. Modes (``optim.clip_mode``):

* ``none``        - gradients unchanged.
* ``global_norm`` - rescale all gradients by ``min(1, clip_value / ||g||_2)`` (Pascanu et al.
  2013; Zaremba et al. 2014 with 5; pytorch/examples with 0.25).
* ``value``       - clamp every element to ``[-clip_value, clip_value]`` (Mikolov's RNNLM).

Learning-rate schedules (``optim.schedule``):

* ``constant``  - ``optim.learning_rate`` throughout.
* ``zaremba``   - held for ``optim.lr_hold_epochs`` epochs, then multiplied by ``optim.lr_decay``
  every epoch: ``lr(epoch) = lr * decay ** max(epoch + 1 - hold, 0)`` (epoch counted from 0).
* ``plateau``   - divided by ``optim.plateau_factor`` whenever the validation loss does not
  improve on the best so far (pytorch/examples). Applied by the training loop through
  :func:`set_learning_rate`; the value lives in the optimizer state, so it is checkpointed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

CLIP_MODES = ("none", "global_norm", "value")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "zaremba", "plateau")
LOSS_REDUCTIONS = ("sum_time", "mean")


def validate(optim_cfg) -> None:
  """Raise ``ValueError`` with a one-line fix for an invalid ``config.optim``."""
  checks = [("name", OPTIMIZERS), ("clip_mode", CLIP_MODES), ("schedule", SCHEDULES),
            ("loss_reduction", LOSS_REDUCTIONS)]
  for key, allowed in checks:
    value = optim_cfg[key]
    if value not in allowed:
      raise ValueError(f"unknown optim.{key} {value!r}; choose one of {', '.join(allowed)}")
  if optim_cfg.clip_mode != "none" and not optim_cfg.clip_value > 0:
    raise ValueError(f"optim.clip_value must be > 0 with clip_mode={optim_cfg.clip_mode!r}, "
                     f"got {optim_cfg.clip_value}")
  if not optim_cfg.learning_rate > 0:
    raise ValueError(f"optim.learning_rate must be > 0, got {optim_cfg.learning_rate}")


def clip_gradients(grads, mode: str, clip_value: float):
  """Clip ``grads`` (a pytree) and report what happened.

  Returns:
    ``(clipped grads, stats)`` with ``stats = {"grad_norm": pre-clip global L2 norm,
    "clipped": 1.0 if clipping changed the gradient else 0.0}`` (float32 scalars).
  """
  norm = optax.tree.norm(grads)
  if mode == "none":
    return grads, {"grad_norm": norm, "clipped": jnp.zeros((), jnp.float32)}
  if mode == "global_norm":
    fired = norm > clip_value
    scale = jnp.where(fired, clip_value / norm, 1.0)
    grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)
  elif mode == "value":
    leaves = jax.tree.leaves(grads)
    fired = jnp.any(jnp.stack([jnp.any(jnp.abs(g) > clip_value) for g in leaves]))
    grads = jax.tree.map(lambda g: jnp.clip(g, -clip_value, clip_value), grads)
  else:
    raise ValueError(f"unknown optim.clip_mode {mode!r}; choose one of {', '.join(CLIP_MODES)}")
  return grads, {"grad_norm": norm, "clipped": fired.astype(jnp.float32)}


def learning_rate_schedule(optim_cfg, steps_per_epoch: int):
  """The schedule as a function of the update count, or a float for constant / plateau."""
  lr = float(optim_cfg.learning_rate)
  if optim_cfg.schedule != "zaremba":
    return lr
  hold, decay = int(optim_cfg.lr_hold_epochs), float(optim_cfg.lr_decay)

  def schedule(count):
    epoch = count // steps_per_epoch
    return lr * decay ** jnp.maximum(epoch + 1 - hold, 0).astype(jnp.float32)

  return schedule


def make_optimizer(optim_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD (optionally with momentum) or Adam, with the learning rate exposed as a hyperparam."""
  validate(optim_cfg)
  lr = learning_rate_schedule(optim_cfg, steps_per_epoch)
  if optim_cfg.name == "sgd":
    momentum = float(optim_cfg.get("momentum", 0.0)) or None
    return optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum)
  return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


def get_learning_rate(opt_state) -> jax.Array:
  """The learning rate used by the last update (a scalar)."""
  return opt_state.hyperparams["learning_rate"]


def set_learning_rate(opt_state, value: float):
  """A copy of ``opt_state`` whose (constant) learning rate is ``value``."""
  hyper = dict(opt_state.hyperparams)
  hyper["learning_rate"] = jnp.asarray(value, hyper["learning_rate"].dtype)
  return opt_state._replace(hyperparams=hyper)
