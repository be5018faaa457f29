"""The ``classify`` task: text classification (SST-2, SMS spam, your own TSV), trained on
padded batches (:mod:`rnnlm_jax.tasks.padded`); data, model and loss are in
:mod:`rnnlm_jax.models.classifier`."""

from rnnlm_jax.models import classifier
from rnnlm_jax.tasks import padded

TASK = padded.make_task_def("classify", classifier)
