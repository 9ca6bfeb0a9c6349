"""The report's figures (matplotlib, Agg backend: no display needed).

- `gain_vs_distance`: one panel per intermediate task; points are a language's gain averaged over
  target tasks and seeds, one colour per model size; lines are the OLS fit of gain on distance
  over (language, task) gains with 95% confidence bands from language-clustered (CR2) errors.
- `task_panels`: the same per target task, for one intermediate task.
- `heatmap`: language x size, the gain averaged over target tasks (and seeds).
Each function writes one PNG and returns its path, or None when there is nothing to draw.
"""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from xfer_t5x.analysis import stats as S  # noqa: E402


def _sizes(df):
  return [s for s, _ in sorted(df[["size", "n_params"]].drop_duplicates().itertuples(index=False, name=None),
                               key=lambda t: (t[1], t[0]))]


def _colors(sizes):
  cmap = plt.get_cmap("viridis")
  return {s: cmap(0.15 + 0.7 * i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}


def _fit_line(ax, part, kind, color):
  """Draws the OLS line and its 95% band (CR2, clustered by language) when estimable."""
  sub = part[np.isfinite(part[kind]) & np.isfinite(part["gain"])]
  if sub["language"].nunique() < S.MIN_LANGUAGES or sub[kind].nunique() < 2:
    return
  try:
    fit = S.fit_slope(sub, kind, fixed_effects=())
  except ValueError:
    return
  xs = np.linspace(sub[kind].min(), sub[kind].max(), 50)
  X = np.column_stack([np.ones_like(xs), xs])
  y = X @ fit.params
  se = np.sqrt(np.einsum("ij,jk,ik->i", X, fit.cov, X))
  t = sps.t.ppf(0.975, fit.df[-1])
  ax.plot(xs, y, color=color, lw=1.5)
  ax.fill_between(xs, y - t * se, y + t * se, color=color, alpha=0.15, lw=0)


def _grid(n, width=4.2, height=3.4, max_cols=3):
  cols = min(max_cols, max(1, n))
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
  for ax in axes.flat[n:]:
    ax.set_visible(False)
  return fig, list(axes.flat[:n])


def _scatter_panel(ax, part, kind, colors, label_points=True, ylabel="gain (score - score without intermediate)"):
  for size, color in colors.items():
    sp = part[part["size"] == size]
    if sp.empty:
      continue
    means = sp.groupby("language", as_index=False).agg(gain=("gain", "mean"), x=(kind, "first"))
    ax.scatter(means["x"], means["gain"], s=14, color=color, label=size, alpha=0.85)
    if label_points and len(means) <= 60:
      for _, r in means.iterrows():
        ax.annotate(r["language"], (r["x"], r["gain"]), fontsize=6, alpha=0.6,
                    xytext=(2, 2), textcoords="offset points")
    _fit_line(ax, sp, kind, color)
  ax.axhline(0, color="grey", lw=0.6, ls=":")
  ax.set_xlabel(f"{kind} distance to English")
  ax.set_ylabel(ylabel)


def gain_vs_distance(frame, kind, path):
  """Gain vs distance per size, one panel per intermediate task."""
  if frame.empty or not np.isfinite(frame[kind]).any():
    return None
  colors = _colors(_sizes(frame))
  inters = sorted(frame["intermediate"].unique())
  fig, axes = _grid(len(inters))
  for ax, inter in zip(axes, inters):
    _scatter_panel(ax, frame[frame["intermediate"] == inter], kind, colors)
    ax.set_title(f"intermediate: {inter}", fontsize=10)
  axes[0].legend(title="size", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def task_panels(frame, kind, intermediate, path):
  """Gain vs distance per size, one panel per target task, for one intermediate task."""
  part = frame[frame["intermediate"] == intermediate]
  if part.empty or not np.isfinite(part[kind]).any():
    return None
  colors = _colors(_sizes(frame))
  tasks = sorted(part["target_task"].unique())
  fig, axes = _grid(len(tasks), width=3.6, height=3.0, max_cols=4)
  for ax, task in zip(axes, tasks):
    _scatter_panel(ax, part[part["target_task"] == task], kind, colors, label_points=False,
                   ylabel="gain")
    ax.set_title(task, fontsize=10)
  axes[0].legend(title="size", fontsize=7)
  fig.suptitle(f"intermediate: {intermediate}", fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def heatmap(frame, kind, path):
  """Language (sorted by distance) x size heat map of the gain averaged over target tasks."""
  if frame.empty:
    return None
  sizes = _sizes(frame)
  inters = sorted(frame["intermediate"].unique())
  dist = frame.groupby("language")[kind].first()
  order = sorted(dist.index, key=lambda l: (np.nan_to_num(dist[l], nan=np.inf), l))
  n_lang = len(order)
  fig, axes = plt.subplots(1, len(inters), figsize=(1.2 + 1.1 * len(sizes) * len(inters) + 1.5,
                                                    1.5 + 0.22 * n_lang), squeeze=False)
  tables = []
  for inter in inters:
    t = (frame[frame["intermediate"] == inter].pivot_table(index="language", columns="size",
                                                           values="gain", aggfunc="mean")
         .reindex(index=order, columns=sizes))
    tables.append(t)
  vmax = max([np.nanmax(np.abs(t.to_numpy())) for t in tables if np.isfinite(t.to_numpy()).any()] + [1e-9])
  for i, (ax, inter, t) in enumerate(zip(axes[0], inters, tables)):
    im = ax.imshow(t.to_numpy(dtype=float), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(sizes)), sizes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_lang), [f"{l} ({dist[l]:.2f})" for l in order] if i == 0 else [],
                  fontsize=7)
    ax.set_title(f"{inter}", fontsize=9)
  fig.colorbar(im, ax=axes[0].tolist(), label="mean gain over target tasks", shrink=0.8)
  fig.suptitle(f"gain by language (sorted by {kind} distance) and size", fontsize=10)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path
