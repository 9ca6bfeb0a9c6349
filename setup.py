"""Packaging for xfer_t5x.

The top-level `tasks/` and `launch/` folders become `xfer_t5x.tasks` and `xfer_t5x.launch`, and
the gin files under `gin/` travel inside the package as `xfer_t5x/gin_files` (a data folder, not
a package, so nothing shadows gin-config's `gin`).
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


def _gin_files():
  """Every .gin file under gin/, as paths relative to gin/."""
  out = []
  for root, _, files in os.walk("gin"):
    for f in files:
      if f.endswith(".gin"):
        out.append(os.path.relpath(os.path.join(root, f), "gin"))
  return sorted(out)


class BuildPyWithGin(build_py):
  """build_py that also copies gin/**.gin into the built package as xfer_t5x/gin_files/.

  An editable install skips the copy: `xfer_t5x.runtime.gin_utils.gin_dir()` then finds the
  repository's gin/ folder beside the package.
  """

  def run(self):
    super().run()
    if getattr(self, "editable_mode", False):
      return
    for rel in _gin_files():
      dst = os.path.join(self.build_lib, "xfer_t5x", "gin_files", rel)
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      shutil.copyfile(os.path.join("gin", rel), dst)

  def get_outputs(self, include_bytecode=1):
    outputs = super().get_outputs(include_bytecode)
    if not getattr(self, "editable_mode", False):
      outputs += [os.path.join(self.build_lib, "xfer_t5x", "gin_files", rel) for rel in _gin_files()]
    return outputs


setup(
    name="xfer_t5x",
    version="0.1.0",
    description="English intermediate-task training for zero-shot cross-lingual transfer with mT5 (JAX/Flax, T5X-style).",
    python_requires=">=3.10",
    packages=[
        "xfer_t5x", "xfer_t5x.model", "xfer_t5x.interop", "xfer_t5x.runtime",
        "xfer_t5x.evaluation", "xfer_t5x.experiments", "xfer_t5x.analysis",
        "xfer_t5x.tasks", "xfer_t5x.tasks.sources", "xfer_t5x.launch",
    ],
    package_dir={
        "xfer_t5x.tasks": "tasks",
        "xfer_t5x.tasks.sources": "tasks/sources",
        "xfer_t5x.launch": "launch",
    },
    data_files=[],
    include_package_data=False,
    package_data={"xfer_t5x": ["demo_data/**/*"]},
    install_requires=[
        "jax>=0.6,<0.11", "jaxlib>=0.6,<0.11", "flax>=0.10,<0.13", "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.11,<0.13", "tensorstore>=0.1.70", "seqio>=0.0.19",
        "tensorflow>=2.18", "tensorflow-text>=2.18", "tensorflow-datasets>=4.9",
        "gin-config>=0.5", "sentencepiece>=0.2", "numpy>=1.26", "protobuf>=5",
        "importlib_resources", "tensorboard", "msgpack",
        "scipy>=1.11", "statsmodels>=0.14", "matplotlib>=3.8", "pandas>=2.0",
        "lang2vec==1.1.2",
    ],
    extras_require={
        "test": ["pytest>=8", "torch>=2.5", "transformers>=4.46", "safetensors"],
        # `xfer-t5x bench --peers`: Hugging Face MT5 beside this library
        "bench": ["torch>=2.5", "transformers>=4.46"],
        "tpu": ["jax[tpu]"],
    },
    cmdclass={"build_py": BuildPyWithGin},
    entry_points={"console_scripts": ["xfer-t5x=xfer_t5x.cli:main"]},
)
