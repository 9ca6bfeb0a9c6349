"""SeqIO tasks and mixtures of the study (importable as xfer_t5x.tasks).

The public entry points, imported lazily so that `import xfer_t5x.tasks.metrics` stays light:
  register_tasks(vocabulary, data_dir, ...)   every task and mixture of the study (study.py)
  add_task(name, source, template, metrics)   one new task in one call (registry.py)
  task_info(name)                             mode, target, language, eval split, metrics, ...
  build_local_vocabulary(texts, path)         a small SentencePiece vocabulary (vocab.py)
  write_demo_data(root)                       synthetic data in the real formats (demo_data.py)
"""
import importlib

_LAZY = {
    "register_tasks": "xfer_t5x.tasks.study",
    "add_task": "xfer_t5x.tasks.registry",
    "add_mixture": "xfer_t5x.tasks.registry",
    "task_info": "xfer_t5x.tasks.registry",
    "registered_tasks": "xfer_t5x.tasks.registry",
    "registered_mixtures": "xfer_t5x.tasks.registry",
    "default_vocabulary": "xfer_t5x.tasks.vocab",
    "build_local_vocabulary": "xfer_t5x.tasks.vocab",
    "write_demo_data": "xfer_t5x.tasks.demo_data",
    "demo_texts": "xfer_t5x.tasks.demo_data",
}


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'xfer_t5x.tasks' has no attribute {name!r}")
