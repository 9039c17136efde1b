"""Small plotting helpers shared by the notebooks (matplotlib only, nothing clever).

    from minift.course import viz
    fig, ax = viz.plot_history(history, title="fine-tuning causal-small")
    fig, ax = viz.plot_with_spread([10, 100, 1000], runs, label="fine-tuned")   # runs: seeds x points

Every helper returns (figure, axes) and never calls plt.show(), so a notebook can add to the plot,
save it with minift.course.save_results(..., figure=fig), and then show it. The numbers behind a
band are available from ``spread(runs)`` so that a notebook can print them as well.
"""

from __future__ import annotations

import math

import numpy as np

from minift.validate import choice, positive_int, probability

DEFAULT_FIGSIZE = (6, 3.5)


def _axes(ax=None, figsize=DEFAULT_FIGSIZE):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def smooth(values, window: int = 1) -> np.ndarray:
    """Trailing moving average over ``window`` points (window 1 returns the values unchanged).
    The first points average over what exists so far, so the output has the input's length."""
    values = np.asarray(values, dtype=float)
    window = positive_int("window", window)
    if values.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {values.shape}")
    if window == 1 or values.size == 0:
        return values.copy()
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (sums[1:] - sums[np.maximum(0, np.arange(1, values.size + 1) - window)]) / counts


def spread(runs, kind: str = "std") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """runs: a (seeds, points) array-like. Returns (centre, low, high) per point.

    kind="std": mean and mean +- one standard deviation (ddof=0; zero width for one seed);
    kind="minmax": mean, minimum and maximum over the seeds. NaN entries (e.g. a diverged run) are
    ignored; a point with no finite value gives NaN."""
    choice("kind", kind, ("std", "minmax"))
    values = np.asarray(runs, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"runs must be a non-empty (seeds, points) array, got shape {values.shape}")
    centre = np.full(values.shape[1], np.nan)
    low, high = centre.copy(), centre.copy()
    for j in range(values.shape[1]):
        column = values[:, j][np.isfinite(values[:, j])]
        if column.size == 0:
            continue
        centre[j] = column.mean()
        if kind == "std":
            low[j], high[j] = centre[j] - column.std(), centre[j] + column.std()
        else:
            low[j], high[j] = column.min(), column.max()
    return centre, low, high


def plot_with_spread(x, runs, label: str | None = None, ax=None, kind: str = "std", marker: str = "o",
                     color=None, alpha: float = 0.2, show_points: bool = False):
    """Mean line over seeds with a shaded band (std or min-max). runs: (seeds, len(x)).

    show_points=True also draws every seed's value as a faint dot. Returns (figure, axes)."""
    x = np.asarray(x)
    values = np.asarray(runs, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.shape[1] != len(x):
        raise ValueError(f"runs must have shape (seeds, {len(x)}) to match x, got {values.shape}")
    fig, ax = _axes(ax)
    centre, low, high = spread(values, kind)
    seeds = values.shape[0]
    band = "± std" if kind == "std" else "min-max"
    full_label = None if label is None else (f"{label} (mean {band}, {seeds} seeds)" if seeds > 1 else label)
    (line,) = ax.plot(x, centre, marker=marker, label=full_label, color=color)
    if seeds > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=alpha, linewidth=0)
    if show_points:
        for row in values:
            ax.plot(x, row, linestyle="none", marker=".", color=line.get_color(), alpha=0.5)
    return fig, ax


def plot_history(history, ax=None, title: str | None = None, label: str | None = None, window: int = 10,
                 accuracy: bool = True):
    """Training loss per step (faint: raw, solid: moving average over ``window`` steps) and, when the
    history has evaluations and accuracy=True, validation accuracy on a second y axis.

    history: a minift History (fit()'s result) or a dict with the same keys. Returns (figure, axes)."""
    get = history.get if isinstance(history, dict) else lambda key, default=None: getattr(history, key, default)
    steps, losses = list(get("train_step", [])), list(get("train_loss", []))
    if not steps or len(steps) != len(losses):
        raise ValueError("history has no training steps to plot (train_step and train_loss must be "
                         "non-empty lists of the same length)")
    fig, ax = _axes(ax)
    prefix = f"{label}: " if label else ""
    (raw,) = ax.plot(np.asarray(steps) + 1, losses, alpha=0.25, linewidth=1)
    ax.plot(np.asarray(steps) + 1, smooth(losses, max(1, min(window, len(losses)))), color=raw.get_color(),
            label=f"{prefix}training loss" + (f" ({window}-step average)" if window > 1 else ""))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    eval_steps, eval_accuracy = list(get("eval_step", [])), list(get("eval_accuracy", []))
    handles, labels = ax.get_legend_handles_labels()
    if accuracy and eval_steps and len(eval_steps) == len(eval_accuracy):
        right = ax.twinx()
        right.plot(eval_steps, [100 * a for a in eval_accuracy], marker="o", color="tab:green",
                   label=f"{prefix}validation accuracy")
        right.set_ylabel("validation accuracy (%)")
        right.set_ylim(0, 100)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig, ax


def chance_line(ax, accuracy: float, label: str = "chance", percent: bool = True):
    """A dashed horizontal line at chance accuracy (e.g. 1/3 for three balanced classes)."""
    accuracy = probability("accuracy", accuracy, include_one=True)
    ax.axhline(100 * accuracy if percent else accuracy, linestyle="--", color="grey", linewidth=1, label=label)
    return ax


def table(rows, columns=None, floatfmt: str = ".3f") -> str:
    """A plain-text table (the static fallback of widgets and the printed form of a results dict).

    rows: a list of dicts (columns default to the first row's keys) or of sequences (give columns)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    if columns is None:
        if not isinstance(rows[0], dict):
            raise ValueError("give columns= when rows are sequences rather than dicts")
        columns = list(rows[0])
    cells = [[_format(row.get(c, "") if isinstance(row, dict) else row[i], floatfmt) for i, c in enumerate(columns)]
             for row in rows]
    widths = [max(len(str(c)), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(columns, widths))),
             "  ".join("-" * w for w in widths)]
    for r in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def _format(value, floatfmt):
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, floatfmt)
    return str(value)


__all__ = ["plot_history", "plot_with_spread", "spread", "smooth", "chance_line", "table"]
