"""A thin Flax linen wrapper around the pure cells, for users composing Flax models.

    layer = RNNLayer(cell="lstm", hidden_size=256)
    variables = layer.init(key, xs)                      # xs [batch, time, features]
    carry, hs = layer.apply(variables, xs)               # hs [batch, time, 256]
    carry, hs2 = layer.apply(variables, xs2, carry)      # continue from the last carry

The parameters live in ``variables["params"]["cell"]`` in exactly the layout of
:mod:`rnnlm_jax.cells` (``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``), so they can be passed to
:func:`rnnlm_jax.rnn.scan_layer` or :func:`rnnlm_jax.interop.to_torch` unchanged.

The initialiser field is called ``initializer`` (the ``init=`` argument of ``Cell.init``): a
dataclass field named ``init`` would shadow ``nn.Module.init`` and break ``layer.init(...)``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnlm_jax import cells, rnn


class RNNLayer(nn.Module):
  """One recurrent layer scanned over time.

  Attributes:
    cell: cell name, one of ``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru``.
    hidden_size: ``H``.
    initializer: ``"uniform"``, ``"orthogonal"`` or ``"identity"`` (see :mod:`rnnlm_jax.cells`).
    init_scale: bound of the uniform initialisation.
    forget_bias: added to the LSTM forget-gate bias (ignored by the other cells).
    unroll: ``lax.scan`` unroll factor.
  """

  cell: str
  hidden_size: int
  initializer: str = "uniform"
  init_scale: float = 0.1
  forget_bias: float = 0.0
  unroll: int = 1

  @nn.compact
  def __call__(self, xs: jax.Array, carry=None):
    """``xs [batch, time, features]``, optional carry ``[batch, H]`` (``(h, c)`` for the LSTM;
    zeros when ``None``) -> ``(final carry, hs [batch, time, H])``."""
    cell = cells.get_cell(self.cell)
    params = self.param(
        "cell",
        lambda key: cell.init(key, xs.shape[-1], self.hidden_size, init=self.initializer,
                              init_scale=self.init_scale, forget_bias=self.forget_bias))
    if carry is None:
      dtype = jnp.result_type(xs.dtype, params["w_ih"].dtype)
      carry = cell.init_carry(xs.shape[0], self.hidden_size, dtype)
    return rnn.scan_layer(cell, params, carry, xs, unroll=self.unroll)
