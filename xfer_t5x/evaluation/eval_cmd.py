"""`xfer-t5x eval`: evaluate a checkpoint on tasks or mixtures, partitioned, as gin configures.

  xfer-t5x eval --gin_file models/mt5_base.gin --gin_file runs/eval.gin \\
    --gin.MODEL_DIR=/tmp/base_xnli --gin.EVAL_TASKS="['xnli_zeroshot']" --gin.CHECKPOINT_STEP=20000

Writes `inference_eval/<task>-<step>.jsonl`, `inference_eval/metrics.jsonl`, `summary.json` and
`summary.txt` into the model dir, and prints each task's metrics and the step's XTREME-R table.
"""
from xfer_t5x.runtime import gin_utils


def add_arguments(parser):
  gin_utils.add_gin_arguments(parser)


def run(args) -> int:
  from xfer_t5x.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import distributed  # pylint: disable=g-import-not-at-top
  gin_utils.setup_gin_from_args(args)
  distributed.initialize()
  evaluator.evaluate()
  return 0
