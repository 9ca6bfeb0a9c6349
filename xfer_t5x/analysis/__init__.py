"""Analysis: does the gain from English intermediate training depend on distance from English?

Reads only the results table (`xfer_t5x.results`). Modules, in the order data flows:
languages (the 50 XTREME-R languages: URIEL codes, script, family) -> distances (URIEL vectors
from lang2vec's .npz files) -> gains (per language x task x size x intermediate) -> stats
(Spearman, size effect, clustered OLS slopes, Holm) and mixed_model -> analyze (all of it) ->
plots and report (Markdown + HTML). simulate makes results with a planted effect (calibration).
Commands: analyze_cmd (`xfer-t5x analyze`), distances_cmd (`xfer-t5x distances`).
"""
