"""The ``music`` task: next-frame prediction on polyphonic piano rolls (Boulanger-Lewandowski
et al. 2012's four data sets), trained on padded batches (:mod:`rnnlm_jax.tasks.padded`); data,
model and loss are in :mod:`rnnlm_jax.models.music`."""

from rnnlm_jax.models import music
from rnnlm_jax.tasks import padded

TASK = padded.make_task_def("music", music)
