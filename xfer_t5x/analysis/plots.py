"""The report's figures (matplotlib, Agg backend: no display needed).

- `gain_vs_distance`: one panel per intermediate task; points are a language's gain averaged over
  target tasks and seeds, one colour per model size (labelled with its parameter count); lines
  are the report's OLS fit of gain on distance over (language, task) gains, drawn at the mean of
  its task intercepts, with 95% bands from language-clustered (CR2) errors; each panel states
  the slopes and CIs. Language labels that would overlap are left out.
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


def _size_label(size, n_params):
  return f"{size} ({n_params / 1e9:.2g}B)" if n_params >= 1e8 else f"{size} ({n_params / 1e6:.2g}M)"


def _fit_line(ax, part, kind, color):
  """Draws the report's OLS fit (one intercept per target task, drawn at their mean) and its 95%
  band (CR2, clustered by language) when estimable."""
  sub = part[np.isfinite(part[kind]) & np.isfinite(part["gain"])]
  if sub["language"].nunique() < S.MIN_LANGUAGES or sub[kind].nunique() < 2:
    return
  try:
    fit = S.fit_slope(sub, kind)
  except ValueError:
    return
  xs = np.linspace(sub[kind].min(), sub[kind].max(), 50)
  k = len(fit.params) - 1  # task intercepts, then the slope
  X = np.column_stack([np.full((len(xs), k), 1.0 / k), xs])
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


# label offsets (points) tried in turn; a label that would sit on another is left out
_OFFSETS = ((3, 3), (3, -9), (-13, 3), (-13, -9), (3, 9), (-13, -15))


def _label_points(ax, points):
  """Language labels placed greedily so that none overlaps another (in axes fractions)."""
  if not points:
    return
  xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
  xr, yr = np.ptp(xs) or 1.0, np.ptp(ys) or 1.0
  w, h = ax.get_figure().get_size_inches() * 72  # points
  placed = []
  for (x, y, text) in sorted(points, key=lambda p: (p[0], p[1])):
    fx, fy = (x - xs.min()) / xr, (y - ys.min()) / yr
    for dx, dy in _OFFSETS:
      lx, ly = fx + dx / (0.8 * w), fy + dy / (0.8 * h)
      if all(abs(lx - px) > 14 / (0.8 * w) or abs(ly - py) > 8 / (0.8 * h) for px, py in placed):
        placed.append((lx, ly))
        ax.annotate(text, (x, y), fontsize=6, alpha=0.7, xytext=(dx, dy),
                    textcoords="offset points")
        break


def _slope_text(slopes, intermediate, kind, sizes):
  if slopes is None or slopes.empty or "slope" not in slopes:
    return ""
  lines = []
  for size in sizes:
    hit = slopes[(slopes["intermediate"] == intermediate) & (slopes["distance"] == kind)
                 & (slopes["size"] == size)]
    if len(hit) and np.isfinite(hit["slope"].iloc[0]):
      r = hit.iloc[0]
      lines.append(f"{size}: {r['slope']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]")
  return "slope [95% CI]\n" + "\n".join(lines) if lines else ""


def _scatter_panel(ax, part, kind, colors, label_points=True, ylabel="gain (score - score without intermediate)",
                   labels=None):
  points = []
  for size, color in colors.items():
    sp = part[part["size"] == size]
    if sp.empty:
      continue
    means = sp.groupby("language", as_index=False).agg(gain=("gain", "mean"), x=(kind, "first"))
    ax.scatter(means["x"], means["gain"], s=14, color=color, label=(labels or {}).get(size, size),
               alpha=0.85)
    if label_points and len(means) <= 60:
      points += list(zip(means["x"], means["gain"], means["language"]))
    _fit_line(ax, sp, kind, color)
  _label_points(ax, points)
  ax.axhline(0, color="grey", lw=0.6, ls=":")
  ax.set_xlabel(f"{kind} distance to English")
  ax.set_ylabel(ylabel)


def _params(frame):
  return dict(frame[["size", "n_params"]].drop_duplicates().itertuples(index=False, name=None))


def gain_vs_distance(frame, kind, path, slopes=None):
  """Gain vs distance per size, one panel per intermediate task; each panel states the slopes
  and CIs of `slopes` (the report's table) for its sizes."""
  if frame.empty or not np.isfinite(frame[kind]).any():
    return None
  sizes = _sizes(frame)
  colors = _colors(sizes)
  labels = {s: _size_label(s, n) for s, n in _params(frame).items()}
  inters = sorted(frame["intermediate"].unique())
  fig, axes = _grid(len(inters))
  for ax, inter in zip(axes, inters):
    _scatter_panel(ax, frame[frame["intermediate"] == inter], kind, colors, labels=labels)
    ax.set_title(f"intermediate: {inter}", fontsize=10)
    text = _slope_text(slopes, inter, kind, sizes)
    if text:
      ax.text(0.98, 0.98, text, transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
              bbox=dict(boxstyle="round", fc="white", ec="#bbb", alpha=0.85))
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
                                                    1.0 + 0.22 * n_lang), squeeze=False,
                           layout="constrained")  # the title sits right above the panels
  tables = []
  for inter in inters:
    t = (frame[frame["intermediate"] == inter].pivot_table(index="language", columns="size",
                                                           values="gain", aggfunc="mean")
         .reindex(index=order, columns=sizes))
    tables.append(t)
  params = _params(frame)
  size_labels = [_size_label(z, params[z]) for z in sizes]
  vmax = max([np.nanmax(np.abs(t.to_numpy())) for t in tables if np.isfinite(t.to_numpy()).any()] + [1e-9])
  for i, (ax, inter, t) in enumerate(zip(axes[0], inters, tables)):
    im = ax.imshow(t.to_numpy(dtype=float), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(sizes)), size_labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_lang), [f"{l} ({dist[l]:.2f})" for l in order] if i == 0 else [],
                  fontsize=7)
    ax.set_title(f"{inter}", fontsize=9)
  fig.colorbar(im, ax=axes[0].tolist(), label="mean gain over target tasks", shrink=0.8)
  fig.suptitle(f"gain by language (sorted by {kind} distance) and size", fontsize=10)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
