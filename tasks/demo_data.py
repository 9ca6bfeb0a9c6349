"""Small synthetic data in the real released formats, for the demo and the tests.

`write_demo_data(root)` writes, under root, the files the file sources read:
  mnli/train.tsv, mnli/dev_matched.tsv     GLUE MNLI TSV (all 12/16 columns)
  sst2/train.tsv, sst2/dev.tsv             GLUE SST-2 TSV
  xnli/xnli.dev.tsv, xnli/xnli.test.tsv    XNLI 1.0 TSV, languages en de es sw zh ar hi tr
  panx/{train,dev,test}-<lang>.tsv         XTREME's PAN-X token<TAB>tag files (train: en only)
  mlm/<lang>.txt                           the mlm baseline's text, one document per line
  translated/mnli/{train,validation}.<lang>.jsonl   MNLI "translated" into de and es
  squad/{train,dev}-v1.1.json              SQuAD v1.1 JSON (English): XQuAD's and LAReQA's training
  xquad/xquad.<lang>.json, lareqa/<lang>.json   XQuAD and XQuAD-R (sentence_breaks) over the
                                           same paragraphs, en de es zh ar hi tr
  tatoeba/tatoeba.<xxx>-eng.{<xxx>,eng}    Tatoeba's aligned files, de es sw zh ar hi tr
The eight languages are in both XNLI and PAN-X, and the seven besides English spread over scripts
(Latin, Han, Arabic, Devanagari) and families, so the analysis has enough languages for its
correlations and slopes (it leaves English out and needs five).
The text is fake but shaped like each language's (script, word order: SVO, SOV in Hindi and
Turkish, VSO in Arabic; no spaces in Chinese). Every string is NFKC-stable, so the local
vocabulary (which normalises with NFKC) decodes it back unchanged.
Labels follow simple patterns a tiny model can learn: NLI by one keyword in the hypothesis
(always -> entailment, maybe -> neutral, never -> contradiction, translated per language), SST-2
by the adjective, NER from gazetteers of names, places and organisations.
`demo_texts(root)` yields every sentence written plus the templates' words, to train a local
vocabulary on (vocab.build_local_vocabulary).
"""
import json
import os
import random
from typing import Dict, Iterator, List, Sequence

from xfer_t5x.tasks import catalog
from xfer_t5x.tasks import templates

LANGUAGES = ("en", "de", "es", "sw", "zh", "ar", "hi", "tr")
NLI_LABELS = ("entailment", "neutral", "contradiction")

# Per language: subjects, verbs, objects, the three keywords that decide the NLI label, the word
# separator, and optionally the word order ("svo" unless said) and the full stop ("." unless said).
_LEX: Dict[str, Dict[str, Sequence[str]]] = {
    "en": {"subj": ["The teacher", "My brother", "The farmer", "A child", "The doctor",
                    "Our neighbour"],
           "verb": ["reads", "buys", "cooks", "paints", "carries", "sells"],
           "obj": ["a book", "the bread", "some fish", "a red chair", "the letters", "fresh rice"],
           "key": ["always", "maybe", "never"], "sep": " "},
    "de": {"subj": ["Der Lehrer", "Mein Bruder", "Der Bauer", "Ein Kind", "Die Ärztin",
                    "Unser Nachbar"],
           "verb": ["liest", "kauft", "kocht", "malt", "trägt", "verkauft"],
           "obj": ["ein Buch", "das Brot", "etwas Fisch", "einen roten Stuhl", "die Briefe",
                   "frischen Reis"],
           "key": ["immer", "vielleicht", "nie"], "sep": " "},
    "es": {"subj": ["El maestro", "Mi hermano", "El granjero", "Un niño", "La doctora",
                    "Nuestro vecino"],
           "verb": ["lee", "compra", "cocina", "pinta", "lleva", "vende"],
           "obj": ["un libro", "el pan", "algo de pescado", "una silla roja", "las cartas",
                   "arroz fresco"],
           "key": ["siempre", "quizás", "nunca"], "sep": " "},
    "sw": {"subj": ["Mwalimu", "Kaka yangu", "Mkulima", "Mtoto", "Daktari", "Jirani yetu"],
           "verb": ["anasoma", "ananunua", "anapika", "anapaka", "anabeba", "anauza"],
           "obj": ["kitabu", "mkate", "samaki", "kiti chekundu", "barua", "mchele mpya"],
           "key": ["daima", "labda", "kamwe"], "sep": " "},
    "zh": {"subj": ["老师", "我哥哥", "农民", "一个孩子", "医生", "我们的邻居"],
           "verb": ["读", "买", "做", "画", "拿", "卖"],
           "obj": ["一本书", "面包", "一些鱼", "一把红椅子", "那些信", "新米"],
           "key": ["总是", "也许", "从不"], "sep": "", "end": "。"},
    "ar": {"subj": ["المعلم", "أخي", "المزارع", "طفل", "الطبيبة", "جارنا"],
           "verb": ["يقرأ", "يشتري", "يطبخ", "يرسم", "يحمل", "يبيع"],
           "obj": ["كتابا", "الخبز", "بعض السمك", "كرسيا أحمر", "الرسائل", "أرزا طازجا"],
           "key": ["دائما", "ربما", "أبدا"], "sep": " ", "order": "vso"},
    "hi": {"subj": ["शिक्षक", "मेरा भाई", "किसान", "एक बच्चा", "डॉक्टर", "हमारा मित्र"],
           "verb": ["लिखता है", "खरीदता है", "पकाता है", "बनाता है", "उठाता है", "बेचता है"],
           "obj": ["एक किताब", "रोटी", "कुछ मछली", "एक लाल कुर्सी", "चिट्ठियाँ", "ताजा चावल"],
           "key": ["हमेशा", "शायद", "कभी नहीं"], "sep": " ", "order": "sov", "end": "।"},
    "tr": {"subj": ["Öğretmen", "Kardeşim", "Çiftçi", "Bir çocuk", "Doktor", "Komşumuz"],
           "verb": ["okuyor", "alıyor", "pişiriyor", "boyuyor", "taşıyor", "satıyor"],
           "obj": ["bir kitap", "ekmeği", "biraz balık", "kırmızı bir sandalye", "mektupları",
                   "taze pirinç"],
           "key": ["her zaman", "belki", "asla"], "sep": " ", "order": "sov"},
}
_SST_POS = ["good", "great", "wonderful", "charming", "moving"]
_SST_NEG = ["bad", "awful", "boring", "dull", "painful"]
_SST_FRAMES = ["a {} film", "the acting is {}", "an often {} journey",
               "{} and {} from start to end", "the story feels {}", "it 's a {} ride"]

# NER gazetteers: names (shared, or local where the language has its own list), organisations
# and places in local spelling, and the glue words around them.
_PER = [["Anna", "Müller"], ["Juma", "Hassan"], ["Maria", "García"], ["John", "Smith"],
        ["Li", "Wei"], ["Amina"], ["Peter", "Brown"]]
_PER_LOCAL = {"ar": [["أحمد", "علي"], ["فاطمة", "حسن"], ["ليلى"], ["محمد", "سعيد"]],
              "hi": [["राहुल", "शर्मा"], ["सीता", "देवी"], ["अमित", "कुमार"], ["प्रिया"]],
              "tr": [["Ayşe", "Yılmaz"], ["Mehmet", "Demir"], ["Elif"], ["Can", "Kaya"]]}
_ORG = {"en": [["United", "Nations"], ["Red", "Cross"], ["City", "Bank"]],
        "de": [["Deutsche", "Bahn"], ["Rotes", "Kreuz"], ["Stadt", "Bank"]],
        "es": [["Naciones", "Unidas"], ["Cruz", "Roja"], ["Banco", "Central"]],
        "sw": [["Umoja", "wa", "Mataifa"], ["Msalaba", "Mwekundu"], ["Benki", "Kuu"]],
        "zh": [["联合国"], ["红十字会"], ["中央", "银行"]],
        "ar": [["الأمم", "المتحدة"], ["الهلال", "الأحمر"], ["البنك", "المركزي"]],
        "hi": [["संयुक्त", "राष्ट्र"], ["रेड", "क्रॉस"], ["भारतीय", "स्टेट", "बैंक"]],
        "tr": [["Birleşmiş", "Milletler"], ["Kızılay"], ["Merkez", "Bankası"]]}
_LOC = {"en": [["London"], ["New", "York"], ["Kenya"]],
        "de": [["Berlin"], ["München"], ["Österreich"]],
        "es": [["Madrid"], ["Buenos", "Aires"], ["México"]],
        "sw": [["Nairobi"], ["Dar", "es", "Salaam"], ["Tanzania"]],
        "zh": [["北京"], ["上海"], ["中国"]],
        "ar": [["القاهرة"], ["الدار", "البيضاء"], ["مصر"]],
        "hi": [["नई", "दिल्ली"], ["मुंबई"], ["भारत"]],
        "tr": [["Ankara"], ["İstanbul"], ["Türkiye"]]}
_NER_GLUE = {"en": (["works", "for"], ["in"]), "de": (["arbeitet", "für"], ["in"]),
             "es": (["trabaja", "para"], ["en"]), "sw": (["anafanya", "kazi", "na"], ["huko"]),
             "zh": (["在"], ["工作", "于"]), "ar": (["يعمل", "في"], ["في"]),
             # SOV: the work words follow the organisation, the place word follows the place.
             "hi": (["के", "लिए", "काम", "करता", "है"], ["में"]),
             "tr": (["için", "çalışıyor"], ["bölgesinde"])}


def _sentence(lang, subj, verb, obj, key=""):
  """One clause in the language's word order; the keyword goes before the verb phrase."""
  lex = _LEX[lang]
  order = lex.get("order", "svo")
  if order == "sov":
    parts = (subj, key, obj, verb)
  elif order == "vso":
    parts = (key, verb, subj, obj)
  else:
    parts = (subj, key, verb, obj)
  return lex["sep"].join(p for p in parts if p) + lex.get("end", ".")


def _nli_pair(rng, lang):
  lex = _LEX[lang]
  s, v, o = rng.choice(lex["subj"]), rng.choice(lex["verb"]), rng.choice(lex["obj"])
  label = rng.randrange(3)
  premise = _sentence(lang, s, v, o)
  s2 = rng.choice(lex["subj"])
  hypothesis = _sentence(lang, s2, rng.choice(lex["verb"]), o, key=lex["key"][label])
  return premise, hypothesis, NLI_LABELS[label]


def _write(path, lines: List[str]):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


def _mnli(rng, n, dev):
  header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\t" +
            ("label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label" if dev else "label1\tgold_label"))
  lines = [header]
  for i in range(n):
    p, h, label = _nli_pair(rng, "en")
    labels = [label] * (5 if dev else 1)
    lines.append("\t".join([str(i), str(1000 + i), f"{1000 + i}{label[0]}", "fiction",
                            f"( {p} )", f"( {h} )", f"(ROOT {p})", f"(ROOT {h})", p, h,
                            *labels, label]))
  return lines


def _xnli(rng, n_per_lang, split_offset):
  header = ("language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\t"
            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tpromptID\tpairID\tgenre\t"
            "label1\tlabel2\tlabel3\tlabel4\tlabel5")
  lines = [header]
  for lang in LANGUAGES:
    for i in range(n_per_lang):
      p, h, label = _nli_pair(rng, lang)
      lines.append("\t".join([lang, label, "", "", "", "", p, h, str(split_offset + i),
                              str(split_offset + i), "fiction", *([label] * 5)]))
  return lines


def _sst2(rng, n):
  lines = ["sentence\tlabel"]
  for _ in range(n):
    positive = rng.random() < 0.5
    words = _SST_POS if positive else _SST_NEG
    frame = rng.choice(_SST_FRAMES)
    lines.append(f"{frame.format(*[rng.choice(words) for _ in range(frame.count('{}'))])} \t"
                 f"{int(positive)}")
  return lines


def _tagged(entity, kind):
  return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(entity)]


def _panx_sentence(rng, lang):
  work, place = _NER_GLUE[lang]
  per, org, loc = (rng.choice(_PER_LOCAL.get(lang, _PER)), rng.choice(_ORG[lang]),
                   rng.choice(_LOC[lang]))
  glue = lambda words: [(w, "O") for w in words]  # noqa: E731
  end = [(_LEX[lang].get("end", "."), "O")]
  if lang == "zh":
    pairs = _tagged(per, "PER") + [(work[0], "O")] + _tagged(loc, "LOC") + [
        (w, "O") for w in place] + _tagged(org, "ORG") + [("。", "O")]
  elif _LEX[lang].get("order") == "sov":  # PER LOC-in ORG-for works / LOC-in , PER ORG-for works
    if rng.random() < 0.5:
      pairs = _tagged(per, "PER") + _tagged(loc, "LOC") + glue(place)
    else:
      pairs = _tagged(loc, "LOC") + glue(place) + [(",", "O")] + _tagged(per, "PER")
    pairs += _tagged(org, "ORG") + glue(work) + end
  elif rng.random() < 0.5:
    pairs = _tagged(per, "PER") + [(w, "O") for w in work] + _tagged(org, "ORG") + [
        (w, "O") for w in place] + _tagged(loc, "LOC") + [(".", "O")]
  else:
    pairs = [(w, "O") for w in place] + _tagged(loc, "LOC") + [(",", "O")] + _tagged(
        per, "PER") + [(w, "O") for w in work] + _tagged(org, "ORG") + [(".", "O")]
  return pairs


def _panx(rng, n, lang):
  lines = []
  for _ in range(n):
    lines += [f"{w}\t{t}" for w, t in _panx_sentence(rng, lang)] + [""]
  return lines[:-1]


def write_demo_data(root: str, seed: int = 0, n_train: int = 120, n_eval: int = 20) -> str:
  """Writes the demo datasets under `root` (see the module docstring); returns root.

  Args:
    root: folder to write into (created); pass it as register_tasks' data_dir.
    seed: the same seed writes the same bytes.
    n_train: rows of each English training file (MNLI, SST-2, PAN-X en).
    n_eval: rows per language of each dev and test file.
  """
  rng = random.Random(seed)
  _write(os.path.join(root, "mnli", "train.tsv"), _mnli(rng, n_train, dev=False))
  _write(os.path.join(root, "mnli", "dev_matched.tsv"), _mnli(rng, n_eval, dev=True))
  _write(os.path.join(root, "sst2", "train.tsv"), _sst2(rng, n_train))
  _write(os.path.join(root, "sst2", "dev.tsv"), _sst2(rng, n_eval))
  _write(os.path.join(root, "xnli", "xnli.dev.tsv"), _xnli(rng, n_eval, 0))
  _write(os.path.join(root, "xnli", "xnli.test.tsv"), _xnli(rng, n_eval, 10000))
  for split, langs, n in (("train", ("en",), n_train), ("dev", LANGUAGES, n_eval),
                          ("test", LANGUAGES, n_eval)):
    for lang in langs:
      _write(os.path.join(root, "panx", f"{split}-{lang}.tsv"), _panx(rng, n, lang))
  # the baselines' data, drawn after the rest so that the files above do not change
  for lang in LANGUAGES:
    _write(os.path.join(root, "mlm", f"{lang}.txt"), _mlm_text(rng, lang, n_train // 2))
  for lang in TRANSLATED_LANGUAGES:
    _write(os.path.join(root, "translated", "mnli", f"train.{lang}.jsonl"),
           _translated_mnli(rng, lang, n_train))
    _write(os.path.join(root, "translated", "mnli", f"validation.{lang}.jsonl"),
           _translated_mnli(rng, lang, n_eval))
  # the QA and retrieval targets' data (XQuAD, LAReQA, Tatoeba and SQuAD v1.1 to train on)
  _write_qa_and_retrieval(root, rng, n_train, n_eval)
  return root


_BASELINE_FOLDERS = ("mlm", "translated")
QA_LANGUAGES = ("en", "de", "es", "zh", "ar", "hi", "tr")        # in XQuAD and LAReQA
TATOEBA_LANGUAGES = ("de", "es", "sw", "zh", "ar", "hi", "tr")   # in Tatoeba (each -> English)
# "Who": the question asks for the subject of one of the paragraph's clauses.
_WHO = {"en": "Who", "de": "Wer", "es": "Quién", "sw": "Nani", "zh": "谁", "ar": "من",
        "hi": "कौन", "tr": "Kim"}


def _question(lang, verb, obj):
  lex = _LEX[lang]
  order = lex.get("order", "svo")
  parts = (_WHO[lang], obj, verb) if order == "sov" else (_WHO[lang], verb, obj)
  return lex["sep"].join(parts) + ("？" if lang == "zh" else "?")


def _paragraphs(rng, n):
  """n paragraphs of three clauses as lexicon indices, each clause with its own subject (the
  answer to "who <verb> <object>?" is unique in its paragraph)."""
  out = []
  for _ in range(n):
    subjects = rng.sample(range(6), 3)
    out.append([(s, rng.randrange(6), rng.randrange(6)) for s in subjects])
  return out


def _squad_json(paragraphs, lang, breaks=False):
  """SQuAD v1.1 JSON of the paragraphs in `lang` (XQuAD-R's form, with sentence_breaks, when
  `breaks`); question ids are the same in every language."""
  lex = _LEX[lang]
  out = []
  for p_i, clauses in enumerate(paragraphs):
    sentences = [_sentence(lang, lex["subj"][s], lex["verb"][v], lex["obj"][o])
                 for s, v, o in clauses]
    join = "" if lex["sep"] == "" else " "
    context, spans = "", []
    for sentence in sentences:
      if context:
        context += join
      spans.append([len(context), len(context) + len(sentence)])
      context += sentence
    qas = []
    for k, ((s, v, o), (start, _)) in enumerate(zip(clauses, spans)):
      subject = lex["subj"][s]
      at = start + context[start:].index(subject)
      qas.append({"id": f"q{p_i}_{k}", "question": _question(lang, lex["verb"][v], lex["obj"][o]),
                  "answers": [{"text": subject, "answer_start": at}]})
    paragraph = {"context": context, "qas": qas}
    if breaks:
      paragraph["sentence_breaks"] = spans
    out.append({"title": f"demo {p_i}", "paragraphs": [paragraph]})
  return json.dumps({"version": "1.1", "data": out}, ensure_ascii=False)


def _write_qa_and_retrieval(root, rng, n_train, n_eval):
  """SQuAD v1.1 train/dev (English), XQuAD and XQuAD-R (LAReQA) in QA_LANGUAGES over the same
  paragraphs, and Tatoeba's aligned sentence files for TATOEBA_LANGUAGES."""
  _write(os.path.join(root, "squad", "train-v1.1.json"),
         [_squad_json(_paragraphs(rng, n_train // 3), "en")])
  _write(os.path.join(root, "squad", "dev-v1.1.json"),
         [_squad_json(_paragraphs(rng, n_eval // 3), "en")])
  shared = _paragraphs(rng, n_eval // 2)
  for lang in QA_LANGUAGES:
    _write(os.path.join(root, "xquad", f"xquad.{lang}.json"), [_squad_json(shared, lang)])
    _write(os.path.join(root, "lareqa", f"{lang}.json"), [_squad_json(shared, lang, True)])
  for lang in TATOEBA_LANGUAGES:
    clauses = [(rng.randrange(6), rng.randrange(6), rng.randrange(6)) for _ in range(n_eval)]
    code = catalog.TATOEBA_CODES[lang]
    for side in (lang, "en"):
      lex = _LEX[side]
      _write(os.path.join(root, "tatoeba", f"tatoeba.{code}-eng.{'eng' if side == 'en' else code}"),
             [_sentence(side, lex["subj"][s], lex["verb"][v], lex["obj"][o])
              for s, v, o in clauses])
TRANSLATED_LANGUAGES = ("de", "es")


def _mlm_text(rng, lang, n_docs):
  """Documents of three clauses each, one per line (the mlm baseline's plain text)."""
  lex = _LEX[lang]
  docs = []
  for _ in range(n_docs):
    docs.append(lex["sep"].join(
        _sentence(lang, rng.choice(lex["subj"]), rng.choice(lex["verb"]), rng.choice(lex["obj"]))
        for _ in range(3)))
  return docs


def _translated_mnli(rng, lang, n):
  """MNLI "machine-translated" into `lang`: JSON lines with MNLI's fields."""
  rows = []
  for i in range(n):
    p, h, label = _nli_pair(rng, lang)
    rows.append(json.dumps({"id": str(i), "premise": p, "hypothesis": h, "label": label},
                           ensure_ascii=False))
  return rows


def demo_texts(root: str) -> Iterator[str]:
  """Every sentence of the demo files under root, then the templates' fixed words."""
  for dirpath, _, files in sorted(os.walk(root)):
    if os.path.relpath(dirpath, root).split(os.sep)[0] in _BASELINE_FOLDERS:
      continue  # the baselines' text repeats the words above
    for name in sorted(files):
      path = os.path.join(dirpath, name)
      with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
      if not name.endswith(".tsv"):  # the QA and retrieval files: their words are above
        continue
      if "panx" in dirpath:
        sentence = []
        for line in lines + [""]:
          if line.strip():
            sentence.append(line.split("\t")[0])
          elif sentence:
            yield " ".join(sentence)
            sentence = []
        continue
      header = lines[0].split("\t")
      wanted = [i for i, h in enumerate(header) if h in ("sentence1", "sentence2", "sentence")]
      for line in lines[1:]:
        fields = line.split("\t")
        for i in wanted:
          if i < len(fields) and fields[i].strip():
            yield fields[i].strip()
  for t in templates.TEMPLATES.values():
    # span corruption: token ids, no words of its own; the retrieval pairs: the words of the
    # retrieval templates (left out so that the vocabulary stays the one it was)
    if t.family in ("span_corruption", "retrieval_pairs"):
      continue
    yield " ".join(w for w in (t.inputs + " " + t.targets).replace("{", " ").replace(
        "}", " ").split())
  yield " ".join(NLI_LABELS + ("positive", "negative", templates.UNANSWERABLE, "None", "$$",
                               "PER:", "LOC:", "ORG:"))
