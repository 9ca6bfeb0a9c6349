"""The 50 XTREME-R languages: URIEL codes, macrolanguages, script and family.

Everything here is a table written out by hand, so a reader can check each entry:

- `XTREME_R_LANGUAGES`: the languages of each XTREME-R target (two-letter codes as XTREME-R
  writes them; RESEARCH.md's table).
- `URIEL_CODE`: two-letter code -> the ISO 639-3 code URIEL (lang2vec 1.1.2) files it under. For
  the eight macrolanguages this is the macrolanguage code; `MACROLANGUAGES` names the individual
  language that URIEL also holds (they differ; `distances.py` chooses between them per feature
  set by coverage).
- `SCRIPT`: the script each language's XTREME-R data is written in; `is_latin()` is the covariate.
- `FAMILY`: the top Glottolog family as URIEL's family vectors record it (Haitian Creole sits under
  Indo-European there; Basque, a family of its own, has no URIEL family node).
"""

XTREME_R_LANGUAGES = {
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh".split(),
    "xcopa": "et ht id it qu sw ta th tr vi zh".split(),
    "udpos": ("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko lt mr nl pl pt ro ru "
              "ta te th tl tr uk ur vi wo yo zh").split(),
    "panx": ("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja "
             "ka ko th sw yo my zh kk tr et fi hu qu pl uk az lt pa gu ro").split(),
    "xquad": "en es de el ru tr ar vi th zh hi ro".split(),
    "mlqa": "en es de ar hi vi zh".split(),
    "tydiqa": "en ar bn fi id ko ru sw te".split(),
    "mewslix": "ar de en es fa ja pl ro ta tr uk".split(),
    "lareqa": "ar de el en es hi ru th tr vi zh".split(),
    "tatoeba": ("af ar az bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko lt ml mr nl "
                "pl pt ro ru sw ta te th tl tr uk ur vi zh").split(),
}

ALL_LANGUAGES = tuple(sorted({l for langs in XTREME_R_LANGUAGES.values() for l in langs}))
REFERENCE = "en"

# (English name, URIEL / ISO 639-3 code, script, top family)
_TABLE = {
    "af": ("Afrikaans", "afr", "Latin", "Indo-European"),
    "ar": ("Arabic", "ara", "Arabic", "Afro-Asiatic"),
    "az": ("Azerbaijani", "aze", "Latin", "Turkic"),
    "bg": ("Bulgarian", "bul", "Cyrillic", "Indo-European"),
    "bn": ("Bengali", "ben", "Bengali", "Indo-European"),
    "de": ("German", "deu", "Latin", "Indo-European"),
    "el": ("Greek", "ell", "Greek", "Indo-European"),
    "en": ("English", "eng", "Latin", "Indo-European"),
    "es": ("Spanish", "spa", "Latin", "Indo-European"),
    "et": ("Estonian", "est", "Latin", "Uralic"),
    "eu": ("Basque", "eus", "Latin", "Basque"),
    "fa": ("Persian", "fas", "Arabic", "Indo-European"),
    "fi": ("Finnish", "fin", "Latin", "Uralic"),
    "fr": ("French", "fra", "Latin", "Indo-European"),
    "gu": ("Gujarati", "guj", "Gujarati", "Indo-European"),
    "he": ("Hebrew", "heb", "Hebrew", "Afro-Asiatic"),
    "hi": ("Hindi", "hin", "Devanagari", "Indo-European"),
    "ht": ("Haitian Creole", "hat", "Latin", "Indo-European"),
    "hu": ("Hungarian", "hun", "Latin", "Uralic"),
    "id": ("Indonesian", "ind", "Latin", "Austronesian"),
    "it": ("Italian", "ita", "Latin", "Indo-European"),
    "ja": ("Japanese", "jpn", "Japanese", "Japonic"),
    "jv": ("Javanese", "jav", "Latin", "Austronesian"),
    "ka": ("Georgian", "kat", "Georgian", "Kartvelian"),
    "kk": ("Kazakh", "kaz", "Cyrillic", "Turkic"),
    "ko": ("Korean", "kor", "Hangul", "Koreanic"),
    "lt": ("Lithuanian", "lit", "Latin", "Indo-European"),
    "ml": ("Malayalam", "mal", "Malayalam", "Dravidian"),
    "mr": ("Marathi", "mar", "Devanagari", "Indo-European"),
    "ms": ("Malay", "msa", "Latin", "Austronesian"),
    "my": ("Burmese", "mya", "Myanmar", "Sino-Tibetan"),
    "nl": ("Dutch", "nld", "Latin", "Indo-European"),
    "pa": ("Punjabi", "pan", "Gurmukhi", "Indo-European"),
    "pl": ("Polish", "pol", "Latin", "Indo-European"),
    "pt": ("Portuguese", "por", "Latin", "Indo-European"),
    "qu": ("Quechua", "que", "Latin", "Quechuan"),
    "ro": ("Romanian", "ron", "Latin", "Indo-European"),
    "ru": ("Russian", "rus", "Cyrillic", "Indo-European"),
    "sw": ("Swahili", "swa", "Latin", "Atlantic-Congo"),
    "ta": ("Tamil", "tam", "Tamil", "Dravidian"),
    "te": ("Telugu", "tel", "Telugu", "Dravidian"),
    "th": ("Thai", "tha", "Thai", "Tai-Kadai"),
    "tl": ("Tagalog", "tgl", "Latin", "Austronesian"),
    "tr": ("Turkish", "tur", "Latin", "Turkic"),
    "uk": ("Ukrainian", "ukr", "Cyrillic", "Indo-European"),
    "ur": ("Urdu", "urd", "Arabic", "Indo-European"),
    "vi": ("Vietnamese", "vie", "Latin", "Austroasiatic"),
    "wo": ("Wolof", "wol", "Latin", "Atlantic-Congo"),
    "yo": ("Yoruba", "yor", "Latin", "Atlantic-Congo"),
    "zh": ("Chinese", "zho", "Han", "Sino-Tibetan"),
}

NAME = {k: v[0] for k, v in _TABLE.items()}
URIEL_CODE = {k: v[1] for k, v in _TABLE.items()}
SCRIPT = {k: v[2] for k, v in _TABLE.items()}
FAMILY = {k: v[3] for k, v in _TABLE.items()}

# two-letter code -> (macrolanguage code, individual-language code); URIEL holds both, and they
# differ (RESEARCH.md, "Language similarity to English").
MACROLANGUAGES = {
    "ar": ("ara", "arb"),  # Arabic -> Standard Arabic
    "az": ("aze", "azj"),  # Azerbaijani -> North Azerbaijani
    "fa": ("fas", "pes"),  # Persian -> Iranian Persian
    "ms": ("msa", "zsm"),  # Malay (macrolanguage) -> Standard Malay
    "qu": ("que", "quz"),  # Quechua -> Cusco Quechua
    "sw": ("swa", "swh"),  # Swahili (macrolanguage) -> Swahili (individual)
    "zh": ("zho", "cmn"),  # Chinese -> Mandarin Chinese
    "et": ("est", "ekk"),  # Estonian (macrolanguage) -> Standard Estonian
}


def check_language(lang):
  """Returns `lang` if it is one of the 50 XTREME-R languages, else raises a clear ValueError."""
  if lang not in _TABLE:
    raise ValueError(
        f"unknown language code {lang!r}: expected one of the 50 XTREME-R two-letter codes "
        f"({' '.join(ALL_LANGUAGES)}); add it to xfer_t5x/analysis/languages.py if it is new")
  return lang


def is_latin(lang):
  """True when the language's XTREME-R data is written in the Latin script."""
  return SCRIPT[check_language(lang)] == "Latin"


def uriel_codes(lang):
  """The URIEL codes that may stand for `lang`: (code,) or (macrolanguage, individual)."""
  check_language(lang)
  return MACROLANGUAGES.get(lang, (URIEL_CODE[lang],))


def tasks_of(lang):
  """The XTREME-R targets that evaluate `lang`."""
  return [t for t, langs in XTREME_R_LANGUAGES.items() if lang in langs]
