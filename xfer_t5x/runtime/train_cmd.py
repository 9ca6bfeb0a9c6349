"""`xfer-t5x train`: run `trainer.train` as configured by gin files and --gin.X flags.

  xfer-t5x train --gin_file models/mt5_tiny.gin --gin_file runs/train.gin \\
    --gin.MODEL_DIR=/tmp/tiny --gin.MIXTURE_OR_TASK_NAME=mnli --gin.TRAIN_STEPS=100
"""
import sys

from xfer_t5x.runtime import gin_utils


def add_arguments(parser):
  gin_utils.add_gin_arguments(parser)


def run(args) -> int:
  from xfer_t5x.runtime import trainer  # pylint: disable=g-import-not-at-top
  gin_utils.setup_gin_from_args(args)
  result = trainer.train()
  if result.preempted:
    print(f"preempted at step {result.step}; checkpoint saved in {result.model_dir}",
          file=sys.stderr)
  return 0
