"""The vocabulary of a run (a gin binding) and the registration of every task with it."""

import gin


@gin.configurable
def setup_vocabulary_and_tasks(vocabulary=None, register: bool = True):
  """Returns the bound vocabulary (default: mT5's SentencePiece model), made the run's, after
  registering the study's tasks and mixtures with it. Called by every command that touches data
  or a model: the model is sized from this vocabulary, and tasks added without one use it."""
  from xfer_t5x.tasks import study, vocab  # pylint: disable=g-import-not-at-top
  vocabulary = vocab.resolve(vocabulary) if vocabulary is not None else vocab.default_vocabulary()
  vocab.check_readable(vocabulary)
  vocab.set_run_vocabulary(vocabulary)
  if register:
    study.register_tasks(vocabulary)
  return vocabulary
