"""rnnlm_jax: recurrent language models (tanh/ReLU RNN, LSTM, GRU) in JAX.

Layout: ``cells`` (pure cells) -> ``rnn`` (scan, stacks) -> ``models`` (LM) ; ``data`` (TFDS
builders, vocabulary, batching) ; ``optim`` (Optax chains, clipping) ; ``train`` (state, steps,
loop) ; ``checkpoint`` ; ``workdir`` (the run directory contract) ; ``main`` (CLI).
"""

__version__ = "0.1.0"
