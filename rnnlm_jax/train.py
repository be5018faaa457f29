"""Training and evaluation of recurrent language models (truncated BPTT).

``train_and_evaluate(config, workdir)`` runs the whole job and honours the workdir contract
(see :mod:`rnnlm_jax.workdir`): re-running it on the same workdir resumes from the latest
checkpoint with the data position, RNG, recurrent state and learning-rate schedule, so an
interrupted run ends with exactly the parameters and metrics of an uninterrupted one.

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
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.training import train_state
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rnnlm_jax import checkpoint as ckpt_lib
from rnnlm_jax import data as data_lib
from rnnlm_jax import optim
from rnnlm_jax import parallel
from rnnlm_jax.models import lm
from rnnlm_jax.workdir import MetricWriter, Workdir

log = logging.getLogger("rnnlm_jax")


class Diverged(RuntimeError):
  """The training loss became NaN or infinite."""


class Interrupted(RuntimeError):
  """SIGINT/SIGTERM received; a checkpoint was saved."""


# How a run that ends by one of these is recorded in provenance.json (Workdir.run_recorded).
RECORDED_OUTCOMES = {Diverged: "diverged", Interrupted: "interrupted"}


class TrainState(train_state.TrainState):
  """Optax train state plus the recurrent carry (truncated BPTT) and the dropout RNG."""

  carry: Any = None
  rng: jax.Array = None


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
  reduction, clip_mode, clip_value = optim_cfg.loss_reduction, optim_cfg.clip_mode, float(
      optim_cfg.clip_value)
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
    grads, stats = optim.clip_gradients(grads, clip_mode, clip_value, state.params)
    state = state.apply_gradients(grads=grads)
    state = state.replace(carry=jax.lax.stop_gradient(carry), rng=rng)
    metrics = {"nll_sum": nll_sum, "lr": optim.get_learning_rate(state.opt_state), **stats,
               **sums}
    return state, metrics

  if mesh is None:
    return jax.jit(train_step, donate_argnums=0)
  return jax.jit(train_step, donate_argnums=0,
                 out_shardings=(state_sharding, parallel.replicated(mesh)))


def make_eval_step(spec: lm.LMSpec):
  """A jitted ``(params, carry, x, y) -> (carry, nll_sum)`` without dropout."""

  @jax.jit
  def eval_step(params, carry, x, y):
    carry, nll_TB = lm.token_nll(params, spec, carry, x, y, None)
    return carry, nll_TB.sum()

  return eval_step


def eval_window(bptt: int, batch_size: int) -> int:
  """Window length for evaluation. The carry crosses windows and there is no dropout, so the
  result does not depend on it; long windows just cut per-call overhead at small batch."""
  return max(bptt, 2048 // max(batch_size, 1))


def evaluate(eval_step, params, spec: lm.LMSpec, ids: np.ndarray, batch_size: int,
             bptt: int, mesh=None) -> tuple[float, int]:
  """Mean per-token NLL (nats) over a token stream ``ids [num_tokens]`` and the token count.

  The stream is cut into ``batch_size`` columns as in training; every target is scored once,
  with the state carried from the start of its column. With a ``mesh`` (``params`` replicated
  on it) the columns are split over its devices when ``batch_size`` divides evenly, else every
  device scores all of them (e.g. ``eval_batch_size`` 1).
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
  for x, y in data_lib.eval_windows(batched, eval_window(bptt, batch_size)):
    carry, s = eval_step(params, carry, put(x), put(y))
    sums.append(s)
    count += y.size
  total = float(np.sum(np.asarray(jax.device_get(sums), np.float64)))
  return total / count, count


# ----------------------------------------------------------------------------- helpers


def _metric_names(level: str, loss: float) -> dict:
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
  requested = int(t.get("num_devices", 0))
  parallel.check_divisible(int(t.batch_size), parallel.resolve_num_devices(requested), requested)
  lm.LMSpec.from_config(config.model, vocab_size=1)  # model fields (cell, init, sizes)


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


class _StopFlag:
  """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame):
    if self.signum is not None:  # second signal: give up at once
      raise KeyboardInterrupt
    self.signum = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


# ----------------------------------------------------------------------------- main loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Train, evaluate on valid every epoch, test with the best-valid checkpoint.

  Returns the final test event. Raises :class:`Diverged` on a NaN/inf loss (status
  ``diverged``) and :class:`Interrupted` on SIGINT/SIGTERM (a checkpoint is saved first).
  """
  # Everything that can be wrong with the input is checked before the workdir is touched.
  validate_config(config)
  wd = Workdir(workdir)
  config_dict = config.to_dict()
  wd.check_config(config_dict)
  corpus = data_lib.load_lm_corpus(config.data, None)
  spec = lm.LMSpec.from_config(config.model, len(corpus.vocab))
  wd.write_config(config_dict)
  data_lib.check_or_write_vocab(corpus.vocab, wd.path)
  return wd.run_recorded(lambda: _run(config, wd, corpus, spec), RECORDED_OUTCOMES)


def _run(config, wd: Workdir, corpus: data_lib.LMCorpus, spec: lm.LMSpec) -> dict:
  t_cfg = config.train
  batch, bptt = int(t_cfg.batch_size), int(config.data.bptt)
  train_batched = data_lib.batchify(corpus.train, batch)
  spe = data_lib.num_train_windows(train_batched, bptt)
  total_steps = int(t_cfg.num_epochs) * spe if int(t_cfg.num_epochs) > 0 else 0
  if int(t_cfg.max_steps) > 0:
    total_steps = min(total_steps, int(t_cfg.max_steps)) if total_steps else int(t_cfg.max_steps)

  mesh = parallel.make_mesh(int(t_cfg.get("num_devices", 0)))
  state = create_train_state(config, spec, spe, mesh)
  state_sharding = parallel.state_shardings(state, mesh)
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  log.info("%s: %d tokens train, vocab %d, %s %dx%d, %.2fM params, %d steps/epoch, %d steps",
           config.data.name, corpus.train.size, len(corpus.vocab), spec.cell, spec.num_layers,
           spec.hidden_size, n_params / 1e6, spe, total_steps)
  log.info("devices: %s; %d columns per device", parallel.describe(mesh), batch // mesh.size)

  ckpt = ckpt_lib.Checkpointer(wd.checkpoint_dir, keep=int(t_cfg.get("checkpoint_keep", 2)))
  meta = {"best_valid_loss": None, "best_step": None, "metrics_lines": 0}
  restored = ckpt.restore_latest(state)  # restored with the shardings of `state`
  if restored is not None:
    state, meta = restored
    state = parallel.place_state(state, mesh)  # a no-op unless orbax placed a leaf otherwise
    wd.truncate_metrics(int(meta["metrics_lines"]))
    log.info("resumed from step %d (epoch %.2f)", int(state.step), int(state.step) / spe)
  else:
    wd.truncate_metrics(0)
  writer = MetricWriter(wd)
  train_step = make_train_step(spec, config.optim, mesh, state_sharding)
  eval_step = make_eval_step(spec)
  eval_bs = int(t_cfg.eval_batch_size)
  level = corpus.level
  start = int(state.step)

  saved_at = [start if restored is not None else None]

  def save(step_now):
    if saved_at[0] == step_now:
      return
    meta["metrics_lines"] = writer.lines
    ckpt.save_latest(step_now, state, dict(meta))
    saved_at[0] = step_now

  pending: list = []
  t_interval = [time.perf_counter(), 0]  # start time, steps timed in this interval

  def flush(step_now):
    """Write one train event for the steps since the last flush; stop on NaN/inf."""
    if not pending:
      return
    got = jax.device_get(pending)
    pending.clear()
    nll = np.array([m["nll_sum"] for m in got], np.float64)
    norms = np.array([m["grad_norm"] for m in got], np.float64)
    elapsed = time.perf_counter() - t_interval[0]
    timed = t_interval[1]
    loss = float(nll.sum() / (len(got) * batch * bptt))
    extras = {}  # remedy terms, unweighted, per position (see the module docstring)
    for name, steps in (("aux_loss", bptt - 1), ("ar", bptt), ("tar", bptt - 1)):
      key = {"aux_loss": "aux_nll_sum"}.get(name, name + "_sum")
      if key in got[0]:
        extras[name] = float(np.sum([m[key] for m in got], dtype=np.float64)
                             / (len(got) * batch * max(steps, 1)))
    event = {"step": step_now, "epoch": step_now / spe, "split": "train", "loss": loss,
             **_metric_names(level, loss), "grad_norm": float(norms.mean()),
             "grad_norm_p50": float(np.median(norms)),
             "grad_norm_p90": float(np.percentile(norms, 90)), "grad_norm_max": float(norms.max()),
             "clipped": float(np.mean([m["clipped"] for m in got])),
             "clip_fraction": float(np.mean([m["clip_fraction"] for m in got])),
             "lr": float(got[-1]["lr"]),
             "tokens_per_sec": timed * batch * bptt / elapsed if timed and elapsed > 0 else None,
             **extras}
    if not np.all(np.isfinite(nll)) or not np.all(np.isfinite(norms)):
      bad = step_now - len(got) + int(np.argmin(np.isfinite(nll) & np.isfinite(norms))) + 1
      writer.write(event)
      reason = f"non-finite loss or gradient at step {bad}"
      wd.write_status("diverged", bad, bad / spe, reason)
      raise Diverged(f"{reason}; see {wd.metrics_file}")
    writer.write(event)
    rate = event["tokens_per_sec"]
    log.info("step %d epoch %.2f train: loss %.4f %s gnorm %.3f clipped %.2f lr %.4g %s",
             step_now, step_now / spe, loss, _fmt_metric(level, loss), event["grad_norm"],
             event["clipped"], event["lr"], f"{rate:,.0f} tok/s" if rate else "")
    bar.set_postfix_str(f"loss {loss:.3f} gnorm {event['grad_norm']:.2f}"
                        + (f" {rate:,.0f} tok/s" if rate else ""))
    t_interval[0], t_interval[1] = time.perf_counter(), 0

  def valid_and_checkpoint(step_now):
    nonlocal state
    flush(step_now)
    eval_p = optim.eval_params(state.opt_state, state.params)  # NT-ASGD: the average
    loss, _ = evaluate(eval_step, eval_p, spec, corpus.valid, eval_bs, bptt, mesh)
    best_before = meta["best_valid_loss"]
    is_best = best_before is None or loss < best_before
    ntasgd = {}
    if config.optim.name == "ntasgd":
      ntasgd["averaging"] = optim.averaging_active(state.opt_state)
    writer.write({"step": step_now, "epoch": step_now / spe, "split": "valid", "loss": loss,
                  **_metric_names(level, loss), "best": is_best, **ntasgd})
    _log_line("valid", step_now, spe, loss, level)
    if is_best:
      meta["best_valid_loss"], meta["best_step"] = loss, step_now
    if ntasgd:  # switch to averaging (Merity et al. 2017's non-monotone trigger)
      history, nonmono = list(meta.get("valid_history", [])), int(config.optim.nonmono)
      if not ntasgd["averaging"] and optim.should_start_averaging(history, loss, nonmono):
        state = parallel.place_state(
            state.replace(opt_state=optim.start_averaging(state.opt_state)), mesh)
        log.info("NT-ASGD: validation loss %.4f is worse than the best of more than %d "
                 "validations ago; averaging the parameters from step %d", loss, nonmono,
                 step_now)
      meta["valid_history"] = history + [loss]
    if not is_best and config.optim.schedule == "plateau":
      lr = float(optim.get_learning_rate(state.opt_state)) / float(config.optim.plateau_factor)
      state = parallel.place_state(
          state.replace(opt_state=optim.set_learning_rate(state.opt_state, lr)), mesh)
      log.info("validation did not improve: learning rate -> %g", lr)
    if is_best:
      ckpt.save_best(step_now, state, dict(meta, metrics_lines=writer.lines))
    save(step_now)
    wd.write_status("running", step_now, step_now / spe)
    if sample_length:
      write_training_sample(wd, optim.eval_params(state.opt_state, state.params), spec,
                            corpus.vocab, config.data, step_now, step_now / spe, sample_length)

  bar = tqdm(total=total_steps, initial=start, unit="step", dynamic_ncols=True,
             disable=not t_cfg.get("progress_bar", True), file=sys.stderr,
             mininterval=1.0 if sys.stderr.isatty() else 30.0)
  log_every, ckpt_every = int(t_cfg.log_every), int(t_cfg.checkpoint_every_steps)
  sample_length = int(t_cfg.get("sample_length", 0))
  try:
    with _StopFlag() as stop, logging_redirect_tqdm():
      for step in range(start, total_steps):
        epoch, window = divmod(step, spe)
        if window == 0:
          state = state.replace(carry=parallel.place_tree(lm.init_carry(spec, batch),
                                                          parallel.batch_sharded(mesh)))
        x, y = data_lib.get_window(train_batched, window, bptt)
        first = step == start
        state, metrics = train_step(state, parallel.place_batch(x, mesh),
                                    parallel.place_batch(y, mesh))
        pending.append(metrics)
        if first:  # exclude compilation from the throughput
          jax.block_until_ready(metrics)
          t_interval[0] = time.perf_counter()
        else:
          t_interval[1] += 1
        done = step + 1
        bar.update(1)
        if done % spe == 0 or done == total_steps:
          valid_and_checkpoint(done)
        elif done % ckpt_every == 0:
          flush(done)
          save(done)
          wd.write_status("running", done, done / spe)
        elif done % log_every == 0:
          flush(done)
        if stop.signum is not None and done < total_steps:
          flush(done)
          save(done)
          ckpt.wait()
          reason = (f"interrupted by signal {stop.signum} at step {done}; re-run the same "
                    "command to resume")
          wd.write_status("failed", done, done / spe, reason)
          raise Interrupted(reason)
  finally:
    bar.close()
    ckpt.wait()

  # Test with the best-validation checkpoint (deterministic: re-running rewrites the same event).
  best = ckpt.restore_best(state)
  best_state, best_meta = best if best is not None else (state, meta)
  best_params = optim.eval_params(best_state.opt_state, best_state.params)
  test_loss, n_test = evaluate(eval_step, parallel.place_tree(best_params,
                                                              parallel.replicated(mesh)),
                               spec, corpus.test, eval_bs, bptt, mesh)
  event = {"step": total_steps, "epoch": total_steps / spe, "split": "test", "loss": test_loss,
           **_metric_names(level, test_loss), "checkpoint": "best_valid",
           "checkpoint_step": int(best_state.step),
           "valid_loss": best_meta.get("best_valid_loss"), "tokens": n_test}
  writer.write(event)
  writer.close()
  _log_line(f"test (best-valid checkpoint, step {int(best_state.step)})", total_steps, spe,
            test_loss, level)
  ckpt.close()
  wd.write_status("finished", total_steps, total_steps / spe)
  return event


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


def _fmt_metric(level: str, loss: float) -> str:
  name, value = next(iter(_metric_names(level, loss).items()))
  return f"{name} {value:.3f}"


def _log_line(split: str, step: int, spe: int, loss: float, level: str) -> None:
  log.info("step %d epoch %.2f %s: loss %.4f %s", step, step / spe, split, loss,
           _fmt_metric(level, loss))


def evaluate_workdir(workdir: str, split: str = "test", text_file: str | None = None,
                     checkpoint: str = "best") -> dict:
  """Evaluate a trained workdir's checkpoint on a split or on a user's text file."""
  wd = Workdir(workdir)
  config = ml_collections.ConfigDict(wd.read_config())
  corpus = data_lib.load_lm_corpus(config.data, str(wd.path))
  spec = lm.LMSpec.from_config(config.model, len(corpus.vocab))
  batch, bptt = int(config.train.batch_size), int(config.data.bptt)
  spe = data_lib.num_train_windows(data_lib.batchify(corpus.train, batch), bptt)
  ckpt = ckpt_lib.Checkpointer(wd.checkpoint_dir)
  target = create_train_state(config, spec, spe)
  restored = ckpt.restore_best(target) if checkpoint == "best" else ckpt.restore_latest(target)
  if restored is None:
    raise FileNotFoundError(f"no {checkpoint} checkpoint in {wd.checkpoint_dir}; train first")
  state, _ = restored
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
  loss, n = evaluate(make_eval_step(spec), optim.eval_params(state.opt_state, state.params),
                     spec, ids, eval_bs, bptt)
  ckpt.close()
  return {"source": source, "checkpoint": checkpoint, "checkpoint_step": int(state.step),
          "loss": loss, **_metric_names(corpus.level, loss), "tokens": n}
