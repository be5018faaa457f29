"""Synthetic long-range tasks (Pascanu et al. 2013; Hochreiter & Schmidhuber 1997)."""

from rnnlm_jax.synthetic.tasks import TASKS, TEST_CHUNK, Batch, Task, get_task, test_chunk, test_key

__all__ = ["TASKS", "TEST_CHUNK", "Batch", "Task", "get_task", "test_chunk", "test_key"]
