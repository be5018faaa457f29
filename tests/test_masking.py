"""Padded batches: each sequence's outputs equal its run alone, in both directions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells, rnn

IN, H, T = 3, 5, 7
LENGTHS = [7, 3, 1, 5]


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_bidirectional_padded_batch_equals_each_sequence_alone(name):
  cell = cells.get_cell(name)
  k = jax.random.split(jax.random.PRNGKey(0), 3)
  p_fw, p_bw = cell.init(k[0], IN, H), cell.init(k[1], IN, H)
  xs = jax.random.normal(k[2], (T, len(LENGTHS), IN))
  lengths = jnp.asarray(LENGTHS)
  # garbage in the padding must not matter
  pad = jnp.arange(T)[:, None] >= lengths[None, :]
  xs = jnp.where(pad[..., None], 1e3, xs)
  (fw, bw), hs = rnn.bidirectional_time_major(cell, p_fw, p_bw, xs, lengths)
  assert hs.shape == (T, len(LENGTHS), 2 * H)
  out = lambda c: cell.carry_output(c)
  for b, n in enumerate(LENGTHS):
    x = xs[:n, b:b + 1]  # the sequence alone, no padding
    zero = cell.init_carry(1, H)
    c_f, h_f = rnn.scan_layer_time_major(cell, p_fw, zero, x)
    c_b, h_b = rnn.scan_layer_time_major(cell, p_bw, zero, x, reverse=True)
    np.testing.assert_allclose(hs[:n, b, :H], h_f[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hs[:n, b, H:], h_b[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out(fw)[b], out(c_f)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out(bw)[b], out(c_b)[0], rtol=1e-5, atol=1e-6)
    assert not np.any(np.asarray(hs[n:, b]))  # zeros at padding


def test_reverse_padded_is_its_own_inverse_and_keeps_padding():
  xs = jnp.arange(T * 2).reshape(T, 2)
  lengths = jnp.asarray([3, 7])
  r = rnn.reverse_padded(xs, lengths)
  np.testing.assert_array_equal(r[:3, 0], xs[:3, 0][::-1])
  np.testing.assert_array_equal(r[3:, 0], xs[3:, 0])
  np.testing.assert_array_equal(r[:, 1], xs[:, 1][::-1])
  np.testing.assert_array_equal(rnn.reverse_padded(r, lengths), xs)
