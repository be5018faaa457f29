"""The sequence model of the synthetic tasks: one recurrent layer and a linear readout.

    x [batch, time, input] -> cell scanned over time -> hs [time, batch, H]
    -> hs at the readout steps t_out [batch, readouts] -> W_out -> outputs [batch, readouts, O]

"class" tasks put a softmax on the outputs (cross-entropy), "real" tasks read them as
predictions (squared error), as in Pascanu et al.'s code (lastSoftmax / softmax / lastLinear):
the loss is averaged over the batch (and over readouts for per-step tasks) and summed over
the outputs.

Parameters: ``{"cell": cells' layout {w_ih, w_hh, b_ih, b_hh}, "out": {"w": [H, O], "b": [O]}}``.

Initialisations (``model.init``), Pascanu et al.'s code (pascanur/trainingRNNs, RNN.py):

* ``smart_tanh`` (tanh RNN): W_ih, W_out ~ N(0, 0.01^2); W_hh ~ N(0, 0.01^2) with all but 15
  entries of every row set to 0, then rescaled to spectral radius 0.95; biases 0.
* ``basic_tanh`` (tanh RNN): W_ih, W_hh, W_out ~ N(0, 0.1^2); biases 0.
* any of :data:`rnnlm_jax.cells.INITS` (``uniform``, ``orthogonal``, ``identity``) with
  ``model.init_scale``; W_out ~ U[-init_scale, init_scale], b_out 0.

Our Elman cell keeps PyTorch's two biases (b_ih + b_hh), Pascanu's one; both start at 0, so
the function is the same and the bias' effective learning rate is doubled.

Pascanu's regulariser (the "R" of SGD-CR), from their code: with ``g_t = dC/dh_t`` (the total
gradient of the cost w.r.t. the hidden state, through later steps too) and
``v_t = (g_t * f'(pre_t)) W_hh^T`` (its back-propagation one step further),

    Omega = sum_t mean_b [ (||v_tb||^2 / ||g_tb||^2 - 1)^2 ] / sum_t frac_b(||g_tb||^2 >= 1e-20)

(squared norms, as the code has it; steps with a vanishing ``g`` count as ratio 1 and are left
out of the normaliser). Its gradient is taken w.r.t. W_hh only, holding ``g`` and ``h``
constant (as the code does), and added to W_hh's gradient with weight ``optim.omega_weight``
before clipping. Defined for the Elman cells (tanh, ReLU) only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells, rnn
from rnnlm_jax.synthetic.tasks import Task

PASCANU_INITS = ("smart_tanh", "basic_tanh")
OMEGA_BOUND = 1e-20


def validate(model_cfg, omega_weight: float = 0.0) -> None:
  """Raise ``ValueError`` with a fix for an invalid ``config.model`` of a synthetic run."""
  cells.get_cell(model_cfg.cell)
  if model_cfg.init not in PASCANU_INITS + cells.INITS:
    raise ValueError(f"unknown model.init {model_cfg.init!r}; choose one of "
                     f"{', '.join(PASCANU_INITS + cells.INITS)}")
  if model_cfg.init in PASCANU_INITS and not model_cfg.cell.startswith("rnn_"):
    raise ValueError(f"model.init={model_cfg.init!r} is for the tanh RNN; use uniform or "
                     f"orthogonal with model.cell={model_cfg.cell!r}")
  if omega_weight and not model_cfg.cell.startswith("rnn_"):
    raise ValueError("optim.omega_weight (Pascanu's regulariser) is defined for rnn_tanh and "
                     f"rnn_relu only, not model.cell={model_cfg.cell!r}")
  if model_cfg.hidden_size <= 0:
    raise ValueError(f"model.hidden_size must be positive, got {model_cfg.hidden_size}")


def _sparse_spectral(key, hidden: int, nonzero: int = 15, radius: float = 0.95) -> jax.Array:
  """Pascanu's smart-tanh W_hh: N(0, 0.01^2), ``nonzero`` entries per row, spectral radius 0.95."""
  k_w, k_mask = jax.random.split(key)
  w = 0.01 * jax.random.normal(k_w, (hidden, hidden))
  keep = jax.vmap(lambda k: jax.random.permutation(k, hidden))(jax.random.split(k_mask, hidden))
  mask = keep < min(nonzero, hidden)  # a random `nonzero` columns per row
  w = np.asarray(jnp.where(mask, w, 0.0), np.float64)
  rho = np.max(np.abs(np.linalg.eigvals(w)))
  return jnp.asarray(radius * w / rho, jnp.float32)


def init_params(key: jax.Array, task: Task, model_cfg) -> dict:
  """Parameters for ``task`` (host-side: smart_tanh computes eigenvalues with numpy)."""
  cell = cells.get_cell(model_cfg.cell)
  H, I, O = int(model_cfg.hidden_size), task.input_size, task.output_size
  k_cell, k_out, k_ih, k_hh = jax.random.split(key, 4)
  if model_cfg.init in PASCANU_INITS:
    std = 0.01 if model_cfg.init == "smart_tanh" else 0.1
    w_hh = (_sparse_spectral(k_hh, H) if model_cfg.init == "smart_tanh"
            else std * jax.random.normal(k_hh, (H, H)))
    p_cell = {"w_ih": std * jax.random.normal(k_ih, (I, H)), "w_hh": w_hh,
              "b_ih": jnp.zeros((H,)), "b_hh": jnp.zeros((H,))}
    w_out = std * jax.random.normal(k_out, (H, O))
  else:
    p_cell = cell.init(k_cell, I, H, init=model_cfg.init, init_scale=float(model_cfg.init_scale),
                       forget_bias=float(model_cfg.forget_bias))
    s = float(model_cfg.init_scale)
    w_out = jax.random.uniform(k_out, (H, O), jnp.float32, -s, s)
  return {"cell": p_cell, "out": {"w": w_out.astype(jnp.float32), "b": jnp.zeros((O,))}}


def hidden_states(cell: cells.Cell, params: dict, x: jax.Array, eps: jax.Array | None = None,
                  members: bool = False) -> jax.Array:
  """``x [batch, time, input] -> hs [time, batch, H]`` from a zero state.

  With ``members=True`` the params and ``x [K, batch, time, input]`` carry a leading axis of K
  independent models (a vmapped sweep) and ``hs`` is ``[time, K, batch, H]``: the recurrence
  runs once for all of them with one batched matmul per step (see
  :func:`rnnlm_jax.rnn.recurrence`), which avoids the layout changes ``jax.vmap`` of a scan
  would add.

  ``eps`` (``hs``-shaped; Elman cells only) is added to each ``h_t`` before it is carried on:
  zeros change nothing, and the gradient w.r.t. ``eps`` is ``dC/dh_t`` (used by Omega).
  """
  p = params["cell"]
  if members:
    gx = jax.vmap(cell.project_inputs, (0, 0), 1)(p, jnp.swapaxes(x, 1, 2))  # [T, K, B, G*H]
    p = {k: (v[:, None, :] if k.startswith("b_") else v) for k, v in p.items()}  # [K, 1, G*H]
    lead = (x.shape[0], x.shape[1])
  else:
    gx = cell.project_inputs(p, jnp.swapaxes(x, 0, 1))  # [T, B, G*H]
    lead = (x.shape[0],)
  hidden = p["w_ih"].shape[-1] // cell.num_gates
  carry = jax.tree.map(lambda c: jnp.broadcast_to(c, lead + (hidden,)),
                       cell.init_carry(1, hidden))
  if eps is None:
    return rnn.recurrence(cell, p, carry, gx)[1]  # the cell's hand-written backward pass
  if cell.name not in ("rnn_tanh", "rnn_relu"):
    raise ValueError("eps (Omega) is defined for the Elman cells only")
  return rnn.elman_recurrence(cell.name[4:], p["w_hh"], carry, gx, eps)


def readout(params: dict, hs: jax.Array, t_out: jax.Array, members: bool = False) -> jax.Array:
  """``hs [time, batch, H]`` at ``t_out [batch, readouts]`` -> outputs ``[batch, readouts, O]``.

  With ``members=True``: ``hs [time, K, batch, H]``, ``t_out [K, batch, readouts]`` ->
  ``[K, batch, readouts, O]``.
  """
  w, b = params["out"]["w"], params["out"]["b"]
  if members:
    K, B = t_out.shape[0], t_out.shape[1]
    picked = hs[t_out, jnp.arange(K)[:, None, None], jnp.arange(B)[None, :, None]]
    return jnp.einsum("kbrh,kho->kbro", picked, w) + b[:, None, None, :]
  picked = hs[t_out, jnp.arange(hs.shape[1])[:, None]]  # [B, R, H]
  return picked @ w + b


def task_loss(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
  """Mean over the batch (and readouts) of cross-entropy ("class") or summed squared error."""
  if task.kind == "class":
    logp = jax.nn.log_softmax(outputs, -1)
    return -jnp.mean(jnp.take_along_axis(logp, y[..., None], -1))
  return jnp.mean(jnp.sum((outputs[..., 0] - y) ** 2, axis=-1))


def omega(cell_name: str, w_hh: jax.Array, hs: jax.Array, g: jax.Array) -> jax.Array:
  """Pascanu's regulariser (module docstring) from ``hs, g [time, batch, H]``; a scalar."""
  deriv = (1.0 - hs * hs) if cell_name == "rnn_tanh" else (hs > 0).astype(hs.dtype)
  v = (g * deriv) @ w_hh.T
  num = jnp.sum(v * v, -1)
  den = jnp.sum(g * g, -1)
  ok = den >= OMEGA_BOUND
  ratio = jnp.where(ok, num / jnp.where(ok, den, 1.0), 1.0)
  per_step = jnp.mean((ratio - 1.0) ** 2, axis=1)
  return jnp.sum(per_step) / jnp.maximum(jnp.sum(jnp.mean(ok, axis=1)), 1e-12)
