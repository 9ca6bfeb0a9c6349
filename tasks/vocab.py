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
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    path = vocabulary.sentencepiece_model_file
    digest = None
    if "://" not in path and os.path.exists(path):
      with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return ("spm", path, vocabulary.extra_ids, digest)
  return (type(vocabulary).__name__, id(vocabulary))
