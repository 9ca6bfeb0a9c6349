"""Sources of the tasks: one reader module per family of released formats, and TFDS.

base.py            FileSource (files under a data dir, read at get_dataset time), Part, ConcatSource
common.py          JSON lines / TSV / CSV / JSON document iterators shared by the readers
classification.py  GLUE MNLI, QQP, SST-2 TSV; XNLI 1.0 TSV; ANLI and SNLI JSON lines
multiple_choice.py XCOPA and COPA, Social IQa, HellaSwag, CommonsenseQA, Cosmos QA
squad.py           SQuAD v1.1 / v2.0 JSON, XQuAD, MLQA, TyDi QA GoldP
tagging.py         XTREME's UD-POS and PAN-X TSV, WikiANN, CoNLL-U, CCGbank .auto
retrieval.py       Tatoeba, LAReQA (XQuAD-R), Mewsli-X
tfds.py            TFDS datasets converted to the same rows (never downloads)
Bad rows are counted through xfer_t5x.tasks.data_report.
"""
