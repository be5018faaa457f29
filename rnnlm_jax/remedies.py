"""Remedies for training recurrent LMs: where each one lives, and the LM-level ones.

Each remedy is an option of the LM (:mod:`rnnlm_jax.models.lm`) used when its config key is on;
every key's default is off, and off leaves the model's computation exactly as before (issue 8).

* Normalisation (``model.norm="layer"``): layer-normalised cells, from the one cell registry
  ``cells.get_cell(name, norm="layer")`` (formulas in :mod:`rnnlm_jax.cells`).
* Residual stacks (``model.residual``), locked (variational) dropout between layers
  (``model.locked_dropout``) and DropConnect on ``W_hh`` (``model.weight_drop``): options of the
  one stack, :func:`rnnlm_jax.rnn.stack_time_major` (:func:`rnnlm_jax.rnn.locked_dropout`,
  :func:`rnnlm_jax.rnn.weight_drop`, re-exported here).
* Here: :func:`embedding_dropout` (``model.embed_dropout``): drops whole words, i.e. rows of the
  embedding matrix, for the whole batch (Gal & Ghahramani 2016; Merity et al. 2017), scaling
  the kept rows by ``1 / (1 - rate)``. Only the input lookup is dropped (the tied softmax
  matrix is not). :func:`init_res_proj`: the residual stack's layer-0 skip projection.
  :func:`activation_penalties` (``optim.ar``, ``optim.tar``): activation regularisation
  ``alpha * mean(h^2)`` on the (dropped) vectors fed to the softmax and temporal activation
  regularisation ``beta * mean((h_t - h_{t-1})^2)`` on the last layer's undropped outputs
  (Merity et al. 2017); added to the differentiated loss by :mod:`rnnlm_jax.tasks.lm`.
* ``model.attention_window`` and ``model.aux_weight``: :mod:`rnnlm_jax.models.attention` and
  :mod:`rnnlm_jax.models.lm`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnlm_jax.cells import NORMS, Cell, layer_norm  # noqa: F401  (re-exported)
from rnnlm_jax.rnn import locked_dropout, weight_drop  # noqa: F401  (re-exported)


# ----------------------------------------------------------------------------- embedding dropout


def embedding_dropout(embed_VE: jax.Array, tokens_BT: jax.Array, rate: float,
                      rng: jax.Array | None) -> jax.Array:
  """Embeddings ``[time, batch, E]`` of ``tokens [batch, time]`` with whole words dropped.

  One Bernoulli draw per vocabulary entry (``[V]``), shared by every occurrence of the word in
  the batch: a dropped word's embedding is zero everywhere in the window, a kept one is scaled
  by ``1 / (1 - rate)`` (Merity et al. 2017's ``embedded_dropout``). Identity lookup when
  ``rate == 0`` or ``rng is None``.
  """
  x_TBE = jnp.take(embed_VE, tokens_BT.T, axis=0)
  if rate == 0.0 or rng is None:
    return x_TBE
  keep_V = jax.random.bernoulli(rng, 1.0 - rate, (embed_VE.shape[0],))
  scale_TB = jnp.take(keep_V.astype(x_TBE.dtype) / (1.0 - rate), tokens_BT.T, axis=0)
  return x_TBE * scale_TB[..., None]


# ----------------------------------------------------------------------------- residual stack


def init_res_proj(key: jax.Array, embed_size: int, hidden_size: int,
                  init_scale: float) -> jax.Array:
  """The residual skip projection of layer 0, ``[E, H]`` U[-init_scale, init_scale]."""
  return jax.random.uniform(key, (embed_size, hidden_size), jnp.float32, -init_scale, init_scale)


# ----------------------------------------------------------------------------- penalties


def activation_penalties(features_TBH: jax.Array,
                         rnn_out_TBH: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sums of Merity et al. 2017's activation penalties over a window.

  Returns ``(ar_sum, tar_sum)``: ``ar_sum`` is the sum over the ``T * B`` positions of
  ``mean_H(features^2)`` (the dropped vectors fed to the softmax); ``tar_sum`` the sum over the
  ``(T - 1) * B`` consecutive pairs of ``mean_H((h_t - h_{t-1})^2)`` of the last layer's
  undropped outputs (within the window). Divided by the position counts they are AWD-LSTM's
  ``.pow(2).mean()`` terms.
  """
  ar_sum = jnp.sum(jnp.mean(jnp.square(features_TBH), axis=-1))
  diff = rnn_out_TBH[1:] - rnn_out_TBH[:-1]
  tar_sum = jnp.sum(jnp.mean(jnp.square(diff), axis=-1))
  return ar_sum, tar_sum
