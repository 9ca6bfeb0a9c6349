"""Vocabularies: the mT5 SentencePiece model (lazy, gs://) and small local ones for tests and demo.

`default_vocabulary()` names the mT5 vocabulary; SeqIO only opens the file when something
tokenizes, so nothing here reads gs:// at import or at construction time.
`build_local_vocabulary(texts, path)` trains a small SentencePiece model with mT5's conventions
(pad 0, EOS 1, UNK 2, no BOS, byte fallback so any script tokenizes) and 100 extra ids.
"""
import hashlib
import io
import os
from typing import Iterable, Optional

import gin
import seqio

from xfer_t5x import fileio

MT5_VOCAB_PATH = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"
MT5_EXTRA_IDS = 100


@gin.configurable
def default_vocabulary(path: str = MT5_VOCAB_PATH,
                       extra_ids: int = MT5_EXTRA_IDS) -> seqio.SentencePieceVocabulary:
  """The vocabulary the tasks are registered with (gin: `default_vocabulary.path`).

  Construction does not read the file; the first encode or decode does.
  """
  return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


def build_local_vocabulary(texts: Iterable[str],
                           path: str,
                           vocab_size: int = 1000,
                           extra_ids: int = MT5_EXTRA_IDS,
                           overwrite: bool = False) -> seqio.SentencePieceVocabulary:
  """Trains a small SentencePiece unigram model on `texts` and returns it as a SeqIO vocabulary.

  Deterministic (one thread, no sampling or shuffling of the input): the same texts give the same
  model file byte for byte. If `path` exists and `overwrite` is False it is reused as is.

  Args:
    texts: training sentences (any scripts; unseen characters fall back to bytes).
    path: where the `.model` file is written.
    vocab_size: pieces in the model (at least 259 + a few: the 256 byte pieces and pad/EOS/UNK
      are part of it); a soft limit, so a tiny corpus gives fewer pieces instead of an error.
    extra_ids: sentinel ids appended by SeqIO (mT5 uses 100).
    overwrite: retrain even if `path` exists.
  """
  if vocab_size < 300:
    raise ValueError(f"vocab_size={vocab_size} is too small: 256 byte pieces and 3 specials "
                     "already take 259; use at least 300")
  if overwrite or not os.path.exists(path):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    sentences = [t.replace("\n", " ").strip() for t in texts]
    sentences = [s for s in sentences if s]
    if not sentences:
      raise ValueError("build_local_vocabulary got no non-empty training text")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        byte_fallback=True,
        character_coverage=0.9995,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        normalization_rule_name="nmt_nfkc",
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        max_sentence_length=8192,
        minloglevel=2,
    )
    fileio.atomic_write(path, model.getvalue())
  return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


def vocabulary_key(vocabulary: Optional[seqio.Vocabulary]):
  """A hashable identity for a vocabulary that never opens a remote file.

  Two SentencePiece vocabularies are the same if they name the same file with the same extra ids
  (and, for a local file, the same contents: a retrained model at the same path is a new one).
  """
  vocabulary = resolve(vocabulary)
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    path = vocabulary.sentencepiece_model_file
    digest = None
    if "://" not in path and os.path.exists(path):
      with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return ("spm", path, vocabulary.extra_ids, digest)
  return (type(vocabulary).__name__, id(vocabulary))


# ------------------------------------------------------------------------------------------------
# The run's vocabulary: one per run, sizes the model, and every task must use it.

_RUN = {"vocabulary": None}


def set_run_vocabulary(vocabulary: Optional[seqio.Vocabulary]) -> None:
  """Makes `vocabulary` the run's (called by the run's setup and by `register_tasks`)."""
  _RUN["vocabulary"] = resolve(vocabulary) if vocabulary is not None else None


def run_vocabulary() -> seqio.Vocabulary:
  """The run's vocabulary: the one set last (a command's setup or `register_tasks`), else the
  gin-bound default (`default_vocabulary.path`), resolved now."""
  return _RUN["vocabulary"] if _RUN["vocabulary"] is not None else default_vocabulary()


class RunVocabulary(seqio.Vocabulary):
  """Stands for the run's vocabulary, whichever it is when the task is used.

  A task added without a vocabulary gets this one, so a module that registers tasks at import
  time (before `--gin.default_vocabulary.path` is applied) still tokenizes with the vocabulary of
  the run that uses it. Every property and method is the resolved vocabulary's.
  """

  def __init__(self):  # pylint: disable=super-init-not-called
    pass

  @property
  def resolved(self) -> seqio.Vocabulary:
    return run_vocabulary()

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return getattr(self.resolved, name)

  eos_id = property(lambda self: self.resolved.eos_id)
  unk_id = property(lambda self: self.resolved.unk_id)
  pad_id = property(lambda self: self.resolved.pad_id)
  bos_id = property(lambda self: self.resolved.bos_id)
  extra_ids = property(lambda self: self.resolved.extra_ids)
  vocab_size = property(lambda self: self.resolved.vocab_size)
  _base_vocab_size = property(lambda self: self.resolved._base_vocab_size)  # pylint: disable=protected-access

  def _encode(self, s):
    return self.resolved._encode(s)  # pylint: disable=protected-access

  def _decode(self, ids):
    return self.resolved._decode(ids)  # pylint: disable=protected-access

  def _encode_tf(self, s):
    return self.resolved._encode_tf(s)  # pylint: disable=protected-access

  def _decode_tf(self, ids):
    return self.resolved._decode_tf(ids)  # pylint: disable=protected-access

  def encode(self, s):
    return self.resolved.encode(s)

  def decode(self, ids):
    return self.resolved.decode(ids)

  def encode_tf(self, s):
    return self.resolved.encode_tf(s)

  def decode_tf(self, ids):
    return self.resolved.decode_tf(ids)

  def __eq__(self, other):
    return vocabulary_key(self) == vocabulary_key(other)

  def __hash__(self):
    return hash(vocabulary_key(self))

  def __repr__(self):
    return f"RunVocabulary(now {describe(self.resolved)})"


class VocabularyFileError(ValueError):
  """The run's vocabulary file cannot be read as a SentencePiece model."""


def check_readable(vocabulary: seqio.Vocabulary) -> None:
  """Refuses a local SentencePiece file that is missing or not a SentencePiece model, naming it
  and the binding (a remote file is read when first used)."""
  path = getattr(vocabulary, "sentencepiece_model_file", None)
  if path is None or "://" in path:
    return
  fix = ("bind default_vocabulary.path to a SentencePiece .model file (mT5's: "
         f"{MT5_VOCAB_PATH}; offline, build one with xfer_t5x.tasks.build_local_vocabulary)")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"the run's vocabulary {path} (default_vocabulary.path) does not "
                            f"exist; {fix}")
  try:
    vocabulary.tokenizer  # pylint: disable=pointless-statement
  except Exception as e:  # pylint: disable=broad-except
    raise VocabularyFileError(
        f"the run's vocabulary {path} (default_vocabulary.path) is not a SentencePiece model "
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}); "
        f"{fix}") from None


def resolve(vocabulary: Optional[seqio.Vocabulary]) -> Optional[seqio.Vocabulary]:
  """The vocabulary itself, or the one a RunVocabulary stands for now."""
  return vocabulary.resolved if isinstance(vocabulary, RunVocabulary) else vocabulary


def _local_size(vocabulary: seqio.Vocabulary) -> Optional[int]:
  """Its size where that needs no remote read (a local file, or a non-file vocabulary)."""
  path = getattr(vocabulary, "sentencepiece_model_file", None)
  if path is not None and ("://" in path or not os.path.exists(path)):
    return None
  try:
    return int(vocabulary.vocab_size)
  except Exception:  # pylint: disable=broad-except
    return None


def describe(vocabulary: seqio.Vocabulary) -> str:
  """One phrase naming a vocabulary: its file, extra ids and size (never reads a remote file)."""
  vocabulary = resolve(vocabulary)
  size = _local_size(vocabulary)
  size_text = f"{size} entries" if size is not None else "size not read"
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    return (f"SentencePiece {vocabulary.sentencepiece_model_file} "
            f"({vocabulary.extra_ids} extra ids, {size_text})")
  return f"{type(vocabulary).__name__} ({vocabulary.extra_ids} extra ids, {size_text})"


def model_vocab_size(vocabulary: seqio.Vocabulary, remote_default: int) -> int:
  """The entries the model's embedding needs for `vocabulary`: its size where the file is local,
  else `remote_default` for mT5's own file (planning offline), else the file is read."""
  vocabulary = resolve(vocabulary)
  size = _local_size(vocabulary)
  if size is not None:
    return size
  if getattr(vocabulary, "sentencepiece_model_file", None) == MT5_VOCAB_PATH and (
      vocabulary.extra_ids == MT5_EXTRA_IDS):
    return remote_default
  return int(vocabulary.vocab_size)
