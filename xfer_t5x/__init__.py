"""xfer_t5x: English intermediate-task training for zero-shot cross-lingual transfer with mT5.

JAX/Flax, T5X conventions (logical axis names, checkpoint layout, gin), SeqIO tasks.
"""
__version__ = "0.1.0"
