"""Scanned recurrent layers and multi-layer stacks built from the pure cells.

Public shapes are batch-major, ``[batch, time, features]``. The ``*_time_major`` variants take
``[time, batch, features]`` and are what the models use internally (no transposes on the hot
path). A stack's carry is a list with one cell carry per layer, so it can be passed from one
window to the next (truncated BPTT).

Dropout follows Zaremba et al. 2014: only non-recurrent connections are dropped. The stack
drops the input of layers 2..L (between layers); the model drops the embeddings and the
output of the last layer.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rnnlm_jax.cells import Carry, Cell, Params


def scan_layer_time_major(cell: Cell, params: Params, carry: Carry, xs_TBI: jax.Array, *,
                          unroll: int = 1, remat: bool = False,
                          reverse: bool = False) -> tuple[Carry, jax.Array]:
  """Run one cell over time.

  Args:
    cell: the cell.
    params: its parameters.
    carry: initial carry, ``[batch, H]`` (``(h, c)`` for the LSTM).
    xs_TBI: inputs ``[time, batch, input]``.
    unroll: ``lax.scan`` unroll factor.
    remat: rematerialise each step in the backward pass (``jax.checkpoint``): saves the gate
      activations' memory at the cost of recomputing them.
    reverse: scan from the last time step to the first.

  Returns:
    ``(final carry, hs [time, batch, H])``.
  """
  gx_TBG = cell.project_inputs(params, xs_TBI)  # one GEMM for all time steps

  def body(c, gx_t):
    return cell.step(params, c, gx_t)

  if remat:
    body = jax.checkpoint(body)
  return jax.lax.scan(body, carry, gx_TBG, unroll=unroll, reverse=reverse)


def scan_layer(cell: Cell, params: Params, carry: Carry, xs_BTI: jax.Array, **kw):
  """As :func:`scan_layer_time_major` on ``[batch, time, input]``; returns ``hs [batch, time, H]``."""
  carry, hs = scan_layer_time_major(cell, params, carry, jnp.swapaxes(xs_BTI, 0, 1), **kw)
  return carry, jnp.swapaxes(hs, 0, 1)


def init_stack(key: jax.Array, cell: Cell, num_layers: int, input_size: int, hidden_size: int,
               **init_kw) -> list[Params]:
  """Parameters of ``num_layers`` stacked cells; layer 0 reads ``input_size`` features."""
  if num_layers < 1:
    raise ValueError(f"num_layers must be >= 1, got {num_layers} (config key model.num_layers)")
  keys = jax.random.split(key, num_layers)
  sizes = [input_size] + [hidden_size] * (num_layers - 1)
  return [cell.init(k, n_in, hidden_size, **init_kw) for k, n_in in zip(keys, sizes)]


def init_stack_carry(cell: Cell, num_layers: int, batch_size: int, hidden_size: int) -> list:
  """Zero carry for a stack: one cell carry per layer."""
  return [cell.init_carry(batch_size, hidden_size) for _ in range(num_layers)]


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Inverted dropout; identity when ``rate == 0`` or ``rng is None`` (evaluation)."""
  if rate == 0.0 or rng is None:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def stack_time_major(cell: Cell, params: Sequence[Params], carries: Sequence[Carry],
                     xs_TBI: jax.Array, *, dropout_rate: float = 0.0, rng: jax.Array | None = None,
                     unroll: int = 1, remat: bool = False) -> tuple[list, jax.Array]:
  """Run a stack of layers over ``[time, batch, input]``.

  Dropout (``rng`` given and ``dropout_rate > 0``) is applied to the input of every layer but
  the first. Returns ``(carries, hs [time, batch, H])`` where ``hs`` is the last layer's output.
  """
  new_carries = []
  h = xs_TBI
  rngs = jax.random.split(rng, len(params)) if rng is not None else [None] * len(params)
  for layer, (p, c) in enumerate(zip(params, carries)):
    if layer > 0:
      h = dropout(h, dropout_rate, rngs[layer])
    c, h = scan_layer_time_major(cell, p, c, h, unroll=unroll, remat=remat)
    new_carries.append(c)
  return new_carries, h


def stack(cell: Cell, params, carries, xs_BTI, **kw):
  """As :func:`stack_time_major` on ``[batch, time, input]``; returns ``hs [batch, time, H]``."""
  carries, hs = stack_time_major(cell, params, carries, jnp.swapaxes(xs_BTI, 0, 1), **kw)
  return carries, jnp.swapaxes(hs, 0, 1)
