"""The ``lm`` task: recurrent language models on a token stream (truncated BPTT).

:class:`LMRun` is what the one loop (:mod:`rnnlm_jax.loop`) trains for a language-model config;
the loop's resume restores the data position (a function of the step), the RNG, the carried
recurrent state and the learning-rate schedule, so an interrupted run ends with exactly the
parameters and metrics of an uninterrupted one.

Data position is a pure function of the step: ``epoch, window = divmod(step, steps_per_epoch)``;
the recurrent state is reset to zeros at the start of every epoch and otherwise carried from
one window to the next.

The loss that is differentiated is the cross-entropy summed over the window's time steps and
averaged over the batch (``optim.loss_reduction="sum_time"``, Zaremba / TF tutorial) or the
per-token mean (``"mean"``, pytorch/examples). Logged ``loss`` is always the mean per-token
cross-entropy in nats.

Remedy terms (issue 8, :mod:`rnnlm_jax.remedies`), when on, are added to the differentiated
loss with the same reduction as the cross-entropy: ``model.aux_weight`` times the auxiliary
head's NLL (``T - 1`` targets per window), ``optim.ar`` times AR and ``optim.tar`` times TAR
(per position: ``mean_H(h^2)``, ``mean_H((h_t - h_{t-1})^2)``). Train events then also log
their unweighted per-position means ``aux_loss``, ``ar``, ``tar``. With ``optim.name="ntasgd"``
the loop starts parameter averaging at a validation (see :mod:`rnnlm_jax.optim`); validation,
the best-valid checkpoint's test and samples then use the averaged parameters, and valid events
carry ``"averaging": true``.

Data parallel (``train.num_devices``, :mod:`rnnlm_jax.parallel`): the state is placed on a 1-D
device mesh (parameters and optimizer state replicated, recurrent carry split on the batch
axis), each window's columns are split over the devices, and the jitted step follows those
shardings; with one device this is the plain single-device loop.
Several processes (``jax.distributed``): the mesh spans every process's devices; each
process builds the same global window and copies only the columns its own devices hold
(:func:`rnnlm_jax.parallel.place_batch`); process 0 alone writes ``vocab.txt`` and samples.
"""

from __future__ import annotations

import logging
import math
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import data as data_lib
from rnnlm_jax import optim
from rnnlm_jax.data import fingerprint
from rnnlm_jax.data.lm import VOCAB_FILENAME
from rnnlm_jax import parallel
from rnnlm_jax import loop
from rnnlm_jax.loop import TrainState
from rnnlm_jax.models import lm
from rnnlm_jax.tasks import Task
from rnnlm_jax.tasks.padded import checked_eval_shape
from rnnlm_jax.workdir import Workdir

log = logging.getLogger("rnnlm_jax")


# ----------------------------------------------------------------------------- steps


def _reduce(nll_sum, batch, time_steps, reduction):
  return nll_sum / batch if reduction == "sum_time" else nll_sum / (batch * time_steps)


def _extra_terms(spec: lm.LMSpec, optim_cfg) -> tuple[float, float]:
  """``(ar, tar)`` weights; the train step takes the plain path when these and
  ``spec.aux_weight`` are 0."""
  return float(optim_cfg.get("ar", 0.0)), float(optim_cfg.get("tar", 0.0))


def make_train_step(spec: lm.LMSpec, optim_cfg, mesh=None, state_sharding=None):
  """A jitted ``(state, x [B, T], y [B, T]) -> (state, metrics)``; ``state`` is donated.

  With a ``mesh`` (and ``state_sharding``, :func:`parallel.state_shardings` of the state) the
  outputs keep the inputs' layout: the new state sharded like the old one, metrics replicated.
  The inputs must already be placed (:func:`parallel.place_state`, :func:`parallel.place_batch`).
  """
  train_step = train_step_fn(spec, optim_cfg)
  if mesh is None:
    return jax.jit(train_step, donate_argnums=0)
  return jax.jit(train_step, donate_argnums=0,
                 out_shardings=(state_sharding, parallel.replicated(mesh)))


def train_step_fn(spec: lm.LMSpec, optim_cfg):
  """The step of :func:`make_train_step` before ``jax.jit`` (``LMRun.check`` traces it)."""
  reduction = optim_cfg.loss_reduction
  ar, tar = _extra_terms(spec, optim_cfg)
  extra = bool(spec.aux_weight or ar or tar)

  def train_step(state: TrainState, x, y):
    rng, drop_rng = jax.random.split(state.rng)
    drop_rng = drop_rng if spec.stochastic else None
    batch, time_steps = x.shape

    def loss_fn(params):
      carry, nll_TB = lm.token_nll(params, spec, state.carry, x, y, drop_rng)
      nll_sum = nll_TB.sum()
      return _reduce(nll_sum, batch, time_steps, reduction), (carry, nll_sum, {})

    def loss_fn_extra(params):  # the remedies' extra terms (aux head, AR, TAR)
      carry, terms = lm.window_losses(params, spec, state.carry, x, y, drop_rng,
                                      penalties=bool(ar or tar))
      nll_sum = terms["nll"].sum()
      loss = _reduce(nll_sum, batch, time_steps, reduction)
      sums = {}
      if spec.aux_weight:
        sums["aux_nll_sum"] = terms["aux_nll"].sum()
        loss += spec.aux_weight * _reduce(sums["aux_nll_sum"], batch, time_steps - 1, reduction)
      if ar:
        sums["ar_sum"] = terms["ar"]
        loss += ar * _reduce(terms["ar"], batch, time_steps, reduction)
      if tar:
        sums["tar_sum"] = terms["tar"]
        loss += tar * _reduce(terms["tar"], batch, time_steps - 1, reduction)
      return loss, (carry, nll_sum, sums)

    (_, (carry, nll_sum, sums)), grads = jax.value_and_grad(
        loss_fn_extra if extra else loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)  # clipped in the optimizer's chain
    state = state.replace(carry=jax.lax.stop_gradient(carry), rng=rng)
    metrics = {"nll_sum": nll_sum, "lr": optim.get_learning_rate(state.opt_state),
               **optim.clip_stats(state.opt_state), **sums}
    return state, metrics

  return train_step


def make_eval_step(spec: lm.LMSpec):
  """A jitted ``(params, carry, x, y) -> (carry, nll_sum)`` without dropout."""

  @jax.jit
  def eval_step(params, carry, x, y):
    carry, nll_TB = lm.token_nll(params, spec, carry, x, y, None)
    return carry, nll_TB.sum()

  return eval_step


def eval_window(bptt: int, batch_size: int, norm: str = "none") -> int:
  """Window length for evaluation. The carry crosses windows and there is no dropout, so the
  result does not depend on it; long windows just cut per-call overhead at small batch.
  Recurrent batch norm (``norm="batch"``) keeps ``bptt``: its statistics are per position in
  the window, and evaluation then reads them at the positions training saw."""
  if norm == "batch":
    return bptt
  return max(bptt, 2048 // max(batch_size, 1))


def make_statistics_step(spec: lm.LMSpec):
  """A jitted ``(params, carry, x [B, T]) -> (carry, stats)``: :func:`lm.batch_statistics`."""
  return jax.jit(lambda params, carry, x: lm.batch_statistics(params, spec, carry, x))


def population_params(params, spec: lm.LMSpec, train_batched: np.ndarray, bptt: int,
                      statistics_step=None):
  """``params`` ready for evaluation: unchanged, or with ``model.norm="batch"`` with population
  statistics (:func:`lm.with_population`) from the first ``spec.bn_population_windows``
  training windows of an epoch (``train_batched [columns, steps]``), run in training mode from
  a zero carry as an epoch starts, without dropout. A pure function of the parameters and the
  data, so a resumed run evaluates exactly as an uninterrupted one."""
  if spec.norm != "batch":
    return params
  statistics_step = statistics_step or make_statistics_step(spec)
  batch_size = train_batched.shape[0]
  carry = lm.init_carry(spec, batch_size)
  windows = min(spec.bn_population_windows, data_lib.num_train_windows(train_batched, bptt))
  collected = []
  for i in range(windows):
    x, _ = data_lib.get_window(train_batched, i, bptt)
    carry, stats = statistics_step(params, carry, jnp.asarray(x))
    collected.append(stats)
  return lm.with_population(params, lm.population_statistics(collected, batch_size))


def evaluate(eval_step, params, spec: lm.LMSpec, ids: np.ndarray, batch_size: int,
             bptt: int, mesh=None, reset_every: int = 0) -> tuple[float, int]:
  """Mean per-token NLL (nats) over a token stream ``ids [num_tokens]`` and the token count.

  The stream is cut into ``batch_size`` columns as in training; every target is scored once,
  with the state carried from the start of its column. With a ``mesh`` (``params`` replicated
  on it) the columns are split over its devices when ``batch_size`` divides evenly, else every
  device scores all of them (e.g. ``eval_batch_size`` 1). ``reset_every`` > 0 (a diagnostic,
  scripts/carry_probe.py): windows of that many tokens, each from the initial state, so only
  the last ``reset_every`` tokens are context.
  """
  batched = data_lib.batchify(ids, batch_size)
  carry = lm.init_carry(spec, batch_size)
  put = jnp.asarray
  if mesh is not None:
    sharding = (parallel.batch_sharded(mesh) if batch_size % mesh.size == 0
                else parallel.replicated(mesh))
    carry = parallel.place_tree(carry, sharding)
    put = lambda a: parallel.place_batch(a, mesh, sharding)
  count = 0
  sums = []
  initial = carry
  for x, y in data_lib.eval_windows(batched, reset_every or eval_window(bptt, batch_size,
                                                                         spec.norm)):
    carry, s = eval_step(params, initial if reset_every else carry, put(x), put(y))
    sums.append(s)
    count += y.size
  total = float(np.sum(np.asarray(jax.device_get(sums), np.float64)))
  return total / count, count


# ----------------------------------------------------------------------------- helpers


def metric_names(level: str, loss: float) -> dict:
  """``perplexity`` for word level, ``bpc`` (bits per character) for char level."""
  if level == "char":
    return {"bpc": loss / math.log(2.0)}
  return {"perplexity": math.exp(min(loss, 700.0))}


def validate_config(config) -> None:
  """Raise ``ValueError`` (one line, with the fix) for inconsistent config values."""
  optim.validate(config.optim)
  t = config.train
  for key in ("batch_size", "eval_batch_size", "log_every", "checkpoint_every_steps"):
    if int(t[key]) < 1:
      raise ValueError(f"train.{key} must be >= 1, got {t[key]}")
  if int(config.data.bptt) < 1:
    raise ValueError(f"data.bptt must be >= 1, got {config.data.bptt}")
  if int(t.num_epochs) < 1 and int(t.max_steps) < 1:
    raise ValueError("set train.num_epochs or train.max_steps to a positive number")
  if int(config.data.bptt) < 2 and (float(config.model.get("aux_weight", 0.0)) > 0
                                    or float(config.optim.get("tar", 0.0)) > 0):
    raise ValueError(f"model.aux_weight and optim.tar need data.bptt >= 2 (they pair steps "
                     f"t and t+1 within a window), got {config.data.bptt}")
  for key in ("num_layers", "hidden_size", "embed_size"):
    if int(config.model[key]) < 1:
      raise ValueError(f"model.{key}={config.model[key]} gives an empty layer; set it to a "
                       "positive size")
  requested = int(t.get("num_devices", 0))
  parallel.check_divisible(int(t.batch_size), parallel.resolve_num_devices(requested), requested)
  lm.LMSpec.from_config(config.model, vocab_size=1)  # model fields (cell, init, sizes)


def check_split_sizes(corpus: data_lib.LMCorpus, batch_size: int, bptt: int,
                      eval_batch_size: int) -> None:
  """Raise ``ValueError`` (one line, with the fix) unless every split fits its batching.

  Train: :func:`rnnlm_jax.data.batchify` cuts ``train [N]`` into ``batch_size`` columns of
  ``N // batch_size`` tokens, and one step needs ``bptt + 1`` of them (inputs and shifted
  targets): ``N >= batch_size * (bptt + 1)``. Valid and test (:func:`evaluate`): columns of
  ``eval_batch_size`` with at least an input and a target each: ``N >= 2 * eval_batch_size``.
  """
  n, need = int(corpus.train.size), batch_size * (bptt + 1)
  if n < need:
    raise ValueError(
        f"data: the train split has {n} tokens, too few for one step of train.batch_size="
        f"{batch_size} columns x (data.bptt={bptt} + 1) tokens = {need}; lower "
        "train.batch_size or data.bptt, or use more data")
  for split in ("valid", "test"):
    n = int(getattr(corpus, split).size)
    if n < 2 * eval_batch_size:
      fix = (f"set train.eval_batch_size <= {n // 2}" if n >= 2 else "use more data")
      raise ValueError(
          f"data: the {split} split has {n} tokens, too few for train.eval_batch_size="
          f"{eval_batch_size} columns of 2 tokens (an input and its target) = "
          f"{2 * eval_batch_size}; {fix}")


def check_existing_vocab(vocab, workdir: str | None) -> None:
  """If ``workdir`` holds a ``vocab.txt`` (a resumed run), check it equals ``vocab``
  (:class:`rnnlm_jax.data.DataError`, a ``ValueError``); writes nothing."""
  if workdir and (pathlib.Path(workdir) / VOCAB_FILENAME).is_file():
    data_lib.check_or_write_vocab(vocab, workdir)  # the file exists: a check only


def create_train_state(config, spec: lm.LMSpec, steps_per_epoch: int,
                       mesh=None) -> TrainState:
  """Fresh state from ``config.seed``: params, optimizer state, zero carry, dropout RNG.

  With a ``mesh`` the state is placed on it (:func:`parallel.place_state`); the values do not
  depend on the mesh.
  """
  init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(int(config.seed)))
  params = lm.init_params(init_rng, spec)
  tx = optim.make_optimizer(config.optim, steps_per_epoch)
  state = TrainState.create(apply_fn=None, params=params, tx=tx,
                            carry=lm.init_carry(spec, int(config.train.batch_size)),
                            rng=dropout_rng)
  return state if mesh is None else parallel.place_state(state, mesh)


class LMRun:
  """A language-model run for :func:`rnnlm_jax.loop.train_and_evaluate` (the ``loop.Run``
  protocol): batches are truncated-BPTT windows ``(x [B, T], y [B, T])`` of the training
  stream cut into ``train.batch_size`` columns, a pure function of the step; the recurrent
  carry is reset to zeros at each epoch's start and carried across windows otherwise."""

  select_metric = "loss"  # mean per-token NLL on valid
  select_mode = "min"
  final_splits = ("test",)

  def __init__(self, config, corpus: data_lib.LMCorpus):
    self.config, self.corpus = config, corpus
    self.spec = lm.LMSpec.from_config(config.model, len(corpus.vocab))
    if self.spec.norm == "batch" and jax.process_count() > 1:
      raise ValueError(f"model.norm='batch' runs in one process only (its population "
                       f"statistics are estimated per process), but this is "
                       f"{parallel.process_line()}; train it without jax.distributed")
    t_cfg = config.train
    self.batch_size, self.bptt = int(t_cfg.batch_size), int(config.data.bptt)
    self.eval_batch_size = int(t_cfg.eval_batch_size)
    check_split_sizes(corpus, self.batch_size, self.bptt, self.eval_batch_size)
    self.uniform_loss = math.log(len(corpus.vocab))  # train `loss` (nats/token) of a uniform model
    self.train_batched = data_lib.batchify(corpus.train, self.batch_size)
    self.steps_per_epoch = data_lib.num_train_windows(self.train_batched, self.bptt)
    self.total_steps = loop.run_length(t_cfg, self.steps_per_epoch)
    self.tokens_per_step = self.batch_size * self.bptt
    self.mesh = parallel.make_mesh(int(t_cfg.get("num_devices", 0)))
    self._step_fn = None
    self._statistics_step = make_statistics_step(self.spec)  # jitted on first use (norm=batch)
    self._last_eval_params: tuple[list, Any] | None = None  # (input leaves, eval_params result)
    self.sample_length = int(t_cfg.get("sample_length", 0))

  def write_files(self, wd: Workdir) -> None:
    """The vocabulary (``vocab.txt``; a resumed run checks it is unchanged)."""
    data_lib.check_or_write_vocab(self.corpus.vocab, wd.path)

  def check(self) -> None:
    """Trace (``jax.eval_shape``: no compilation, nothing computed) the initial state, one
    train step on ``x, y [batch_size, bptt]`` and one evaluation window ``[eval_batch_size,
    eval_window]``; a shape error becomes a one-line ``ValueError``."""
    config, spec, tokens = self.config, self.spec, self.corpus.train.dtype
    state = checked_eval_shape(
        "the parameter init", lambda: create_train_state(config, spec, self.steps_per_epoch))
    window = jax.ShapeDtypeStruct((self.batch_size, self.bptt), tokens)
    checked_eval_shape(f"one train step on [train.batch_size={self.batch_size}, data.bptt="
                       f"{self.bptt}] windows", train_step_fn(spec, config.optim), state,
                       window, window)
    e_bs = self.eval_batch_size
    e_window = jax.ShapeDtypeStruct((e_bs, eval_window(self.bptt, e_bs, spec.norm)), tokens)
    carry = checked_eval_shape("the evaluation carry", lambda: lm.init_carry(spec, e_bs))
    checked_eval_shape(f"one evaluation window of train.eval_batch_size={e_bs} columns",
                       make_eval_step(spec), jax.eval_shape(self.eval_params, state.params),
                       carry, e_window, e_window)

  def data_fingerprint(self) -> dict:
    """What identifies the prepared data (see :mod:`rnnlm_jax.data.fingerprint`): the
    builder, its version, the tokenizer, the vocabulary (size, sha256 of ``vocab.txt``) and
    each split's token count and sha256 (int32 little-endian ids)."""
    return corpus_fingerprint(self.corpus)

  def describe(self, state) -> str:
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    spec = self.spec
    return (f"{self.config.data.name}: {self.corpus.train.size} tokens train, vocab "
            f"{len(self.corpus.vocab)}, {spec.cell} {spec.num_layers}x{spec.hidden_size}, "
            f"{n_params / 1e6:.2f}M params; devices: {parallel.describe(self.mesh)}, "
            f"{self.batch_size // self.mesh.size} columns per device")

  def init_state(self) -> TrainState:
    state = create_train_state(self.config, self.spec, self.steps_per_epoch, self.mesh)
    self._step_fn = make_train_step(self.spec, self.config.optim, self.mesh,
                                    parallel.state_shardings(state, self.mesh))
    self._eval_step = make_eval_step(self.spec)
    return state

  def eval_params(self, params):
    """``params`` as evaluation and sampling read them (:func:`population_params`). The last
    result is kept for the same parameter arrays: a validation and the training sample after
    it (``train.sample_length``) estimate the batch-norm population once, not twice."""
    leaves = jax.tree.leaves(params)
    last = self._last_eval_params
    if last is not None and len(last[0]) == len(leaves) and all(
        a is b for a, b in zip(last[0], leaves)):
      return last[1]
    out = population_params(params, self.spec, self.train_batched, self.bptt,
                            self._statistics_step)
    self._last_eval_params = (leaves, out) if self.spec.norm == "batch" else None
    return out

  def place_state(self, state: TrainState) -> TrainState:
    return parallel.place_state(state, self.mesh)

  def start_epoch(self, state: TrainState, epoch: int) -> TrainState:
    return state.replace(carry=parallel.place_tree(lm.init_carry(self.spec, self.batch_size),
                                                   parallel.batch_sharded(self.mesh)))

  def batch(self, step: int):
    x, y = data_lib.get_window(self.train_batched, step % self.steps_per_epoch, self.bptt)
    return parallel.place_batch(x, self.mesh), parallel.place_batch(y, self.mesh)

  def train_step(self, state: TrainState, batch):
    return self._step_fn(state, *batch)

  def train_metrics(self, got: list[dict]) -> tuple[dict, np.ndarray]:
    """Mean per-token NLL (and perplexity or bits/char) of the steps in ``got``, and the
    remedy terms, unweighted, per position (see the module docstring)."""
    nll = np.array([m["nll_sum"] for m in got], np.float64)
    loss = float(nll.sum() / (len(got) * self.tokens_per_step))
    extras = {}
    for name, steps in (("aux_loss", self.bptt - 1), ("ar", self.bptt), ("tar", self.bptt - 1)):
      key = {"aux_loss": "aux_nll_sum"}.get(name, name + "_sum")
      if key in got[0]:
        extras[name] = float(np.sum([m[key] for m in got], dtype=np.float64)
                             / (len(got) * self.batch_size * max(steps, 1)))
    return {"loss": loss, **metric_names(self.corpus.level, loss), **extras}, nll

  def evaluate(self, params, split: str) -> dict:
    params = parallel.place_tree(self.eval_params(params), parallel.replicated(self.mesh))
    loss, n = evaluate(self._eval_step, params, self.spec, getattr(self.corpus, split),
                       self.eval_batch_size, self.bptt, self.mesh)
    return {"loss": loss, **metric_names(self.corpus.level, loss), "tokens": n}

  def valid_extras(self, state: TrainState) -> dict:
    if self.config.optim.name == "ntasgd":
      return {"averaging": bool(optim.averaging_active(state.opt_state))}
    return {}

  def after_validation(self, state: TrainState, metrics: dict, is_best: bool, meta: dict,
                       step: int, wd: Workdir) -> TrainState:
    """NT-ASGD's switch to averaging, the plateau schedule's decay, the training sample."""
    loss, optim_cfg = metrics["loss"], self.config.optim
    if optim_cfg.name == "ntasgd":  # Merity et al. 2017's non-monotone trigger
      history, nonmono = list(meta.get("valid_history", [])), int(optim_cfg.nonmono)
      if (not optim.averaging_active(state.opt_state)
          and optim.should_start_averaging(history, loss, nonmono)):
        state = self.place_state(state.replace(opt_state=optim.start_averaging(state.opt_state)))
        log.info("NT-ASGD: validation loss %.4f is worse than the best of more than %d "
                 "validations ago; averaging the parameters from step %d", loss, nonmono, step)
      meta["valid_history"] = history + [loss]
    if not is_best and optim_cfg.schedule == "plateau":
      lr = float(optim.get_learning_rate(state.opt_state)) / float(optim_cfg.plateau_factor)
      state = self.place_state(
          state.replace(opt_state=optim.set_learning_rate(state.opt_state, lr)))
      log.info("validation did not improve: learning rate -> %g", lr)
    if self.sample_length:
      params = self.eval_params(optim.eval_params(state.opt_state, state.params))
      if jax.process_count() > 1:  # process 0 samples alone, on its own copy of the params
        params = jax.device_get(params)
      if wd.primary:
        write_training_sample(wd, params, self.spec, self.corpus.vocab, self.config.data, step,
                              step / self.steps_per_epoch, self.sample_length)
    return state


def corpus_fingerprint(corpus: data_lib.LMCorpus) -> dict:
  """:meth:`LMRun.data_fingerprint` of a corpus (a JSON-able dict)."""
  builder = data_lib.BUILDERS.get(corpus.name)
  return {"fingerprint_version": fingerprint.FINGERPRINT_VERSION, "task": "lm",
          "builder": builder.name if builder else corpus.name,
          "builder_version": str(builder.VERSION) if builder else None,
          "tokenizer": corpus.tokenizer, "level": corpus.level,
          "vocab": {"size": len(corpus.vocab),
                    "sha256": fingerprint.tokens_sha256(corpus.vocab.tokens)},
          "splits": {s: {"tokens": int(getattr(corpus, s).size),
                         "sha256": fingerprint.array_sha256(getattr(corpus, s), "<i4")}
                     for s in ("train", "valid", "test")}}


def make_run(config, workdir: str | None = None) -> LMRun:
  """Load the corpus and build the run; writes nothing. Raises ``ValueError`` (one line) for
  data that cannot be batched as configured (:func:`check_split_sizes`) or a ``workdir``
  whose ``vocab.txt`` holds another vocabulary."""
  corpus = data_lib.load_lm_corpus(config.data, None)
  check_existing_vocab(corpus.vocab, workdir)
  return LMRun(config, corpus)


def write_training_sample(wd: Workdir, params, spec: lm.LMSpec, vocab, data_config, step: int,
                          epoch: float, length: int) -> str:
  """Sample ``length`` tokens (temperature 1, seeded by ``step``) and append them to the log
  and to ``WORKDIR/samples.txt``; returns the text. Starts from ``<eos>`` (a newline for char
  vocabularies without one), so it shows what the model writes unprompted."""
  from rnnlm_jax import sample  # only runs with train.sample_length > 0
  start = vocab.encode([sample.start_token(vocab) or vocab.decode([0])[0]])
  ids = sample.generate(params, spec, start, jax.random.PRNGKey(step), length=length)
  text = sample.detokenize(vocab.decode(np.asarray(ids[0]).tolist()),
                           sample.tokenizer_of(data_config, vocab))
  with open(wd.path / "samples.txt", "a", encoding="utf-8") as f:
    f.write(f"==> step {step} (epoch {epoch:.2f}), {length} tokens, temperature 1 <==\n"
            f"{text}\n\n")
  log.info("sample at step %d: %s", step, text.replace("\n", " | ")[:300])
  return text


class Restored(NamedTuple):
  """A trained workdir read back for evaluation (:func:`restore_workdir`)."""
  config: ml_collections.ConfigDict
  corpus: data_lib.LMCorpus
  spec: lm.LMSpec
  params: Any  # the evaluation parameters (averaged ones for NT-ASGD, BN population added)
  step: int  # the checkpoint's step


def restore_workdir(workdir: str, checkpoint: str = "best") -> Restored:
  """A workdir's config, corpus and ``checkpoint`` ("best" | "latest") ready to evaluate."""
  wd = Workdir(workdir)
  config = ml_collections.ConfigDict(wd.read_config())
  corpus = data_lib.load_lm_corpus(config.data, str(wd.path))
  spec = lm.LMSpec.from_config(config.model, len(corpus.vocab))
  batch, bptt = int(config.train.batch_size), int(config.data.bptt)
  train_batched = data_lib.batchify(corpus.train, batch)
  spe = data_lib.num_train_windows(train_batched, bptt)
  state = ckpt_lib.restore_for_evaluation(wd.checkpoint_dir, create_train_state(config, spec, spe),
                                          checkpoint)
  params = population_params(optim.eval_params(state.opt_state, state.params), spec,
                             train_batched, bptt)
  return Restored(config, corpus, spec, params, int(state.step))


def evaluate_workdir(workdir: str, split: str = "test", text_file: str | None = None,
                     checkpoint: str = "best") -> dict:
  """Evaluate a trained workdir's checkpoint on a split or on a user's text file."""
  config, corpus, spec, params, step = restore_workdir(workdir, checkpoint)
  if text_file:
    ids = data_lib.encode_text_file(text_file, corpus.vocab, corpus.level)
    source = text_file
  else:
    if split not in ("train", "valid", "test"):
      raise ValueError(f"unknown split {split!r}; choose train, valid or test")
    ids, source = getattr(corpus, split), split
  eval_bs = int(config.train.eval_batch_size)
  if ids.size < eval_bs + 1:
    eval_bs = 1
  loss, n = evaluate(make_eval_step(spec), params, spec, ids, eval_bs, int(config.data.bptt))
  return {"source": source, "checkpoint": checkpoint, "checkpoint_step": step,
          "loss": loss, **metric_names(corpus.level, loss), "tokens": n}


def _evaluate_workdir(workdir: str, split: str = "test", checkpoint: str = "best",
                      text: str | None = None) -> dict:
  return evaluate_workdir(workdir, split, text, checkpoint)


TASK = Task(name="lm", validate_config=validate_config, make_run=make_run,
            evaluate_workdir=_evaluate_workdir, has_text=True)
