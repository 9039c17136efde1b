"""Rank explorer (chapter 03): drag a slider, see the best rank-r approximation of a matrix.

    from minift.course.widgets import rank_explorer
    rank_explorer.static_figure(W, ranks=(1, 2, 4, 8))     # works everywhere (GitHub, no widgets)
    rank_explorer.build(W)                                 # a slider + live picture in Jupyter

``rank_view(W, r)`` is the pure part: it computes everything the widget shows, so tests can check it
without a browser; ``build`` only wires it to ipywidgets.
"""

from __future__ import annotations

import torch

from minift.analysis import lowrank


def rank_view(W, r: int) -> dict:
    """What the explorer shows for rank r: the approximation, its error, the kept energy, and how many
    numbers a rank-r factorisation stores compared with the full matrix."""
    M = lowrank._matrix(W)
    r = lowrank._rank_arg(r, M)
    out_dim, in_dim = M.shape
    approx = lowrank.truncated_svd(M, r)
    S = torch.linalg.svdvals(M)
    total = float((S ** 2).sum())
    energy = float((S[:r] ** 2).sum()) / total if total > 0 else 1.0
    return {
        "rank": r,
        "approx": approx,
        "residual": M - approx,
        "error": lowrank.reconstruction_error(M, r),
        "energy": energy,
        "singular_values": S,
        "factor_numbers": r * (out_dim + in_dim),
        "full_numbers": out_dim * in_dim,
    }


def summary_html(view: dict) -> str:
    """One line of HTML describing a rank_view()."""
    ratio = view["factor_numbers"] / view["full_numbers"]
    return (f"<b>rank {view['rank']}</b>: relative error ||W - W_r||/||W|| = {view['error']:.3f}, "
            f"energy kept = {100 * view['energy']:.1f}%, numbers stored as B A = "
            f"{view['factor_numbers']:,} ({100 * ratio:.1f}% of the {view['full_numbers']:,} in W)")


def _draw(axes, W, view, title: str = "W"):
    """Three panels: W, its rank-r approximation, and the residual, on one colour scale."""
    M = lowrank._matrix(W)
    limit = float(M.abs().max()) or 1.0
    panels = ((M, title), (view["approx"], f"rank-{view['rank']} approximation"),
              (view["residual"], f"residual (rel. error {view['error']:.2f})"))
    image = None
    for ax, (matrix, name) in zip(axes, panels):
        image = ax.imshow(matrix.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("input index")
        ax.set_ylabel("output index")
    return image


def static_figure(W, ranks=(1, 2, 4, 8), title: str = "W"):
    """The static fallback: one row per rank (W, approximation, residual), plus a printed table."""
    import matplotlib.pyplot as plt

    M = lowrank._matrix(W)
    ranks = [r for r in ranks if r <= min(M.shape)]
    fig, axes = plt.subplots(len(ranks), 3, figsize=(8, 2.3 * len(ranks)), squeeze=False)
    for row, r in zip(axes, ranks):
        _draw(row, M, rank_view(M, r), title)
    fig.suptitle(f"best rank-r approximations of {title} {tuple(M.shape)}")
    fig.tight_layout()
    print(f"{'rank':>4} | {'rel. error':>10} | {'energy kept':>11} | numbers in B A")
    for r in ranks:
        view = rank_view(M, r)
        print(f"{r:>4} | {view['error']:>10.3f} | {100 * view['energy']:>10.1f}% | {view['factor_numbers']:,}")
    return fig


PIXELS_PER_RANK = 10
# ipywidgets gives HTML content a 28-px line height (one widget row): the two-line summary was
# double-spaced (seen in JupyterLab in headless Chromium, tests/browser/check_frontends.py)
EXPLORER_CLASS = "minift-rank-explorer"
SUMMARY_STYLE = f"<style>.{EXPLORER_CLASS} .widget-html-content {{line-height: 1.4;}}</style>"


def slider_width(ranks: int) -> str:
    """CSS width of the rank slider: PIXELS_PER_RANK per rank plus room for its label and read-out,
    at least 320 px, and never wider than the notebook."""
    return f"min(100%, {max(320, 160 + PIXELS_PER_RANK * ranks)}px)"


def build(W, title: str = "W", initial: int = 1):
    """A slider (rank), an HTML line (the numbers) and an Output (the three panels), wired together.

    Returns (container, slider, html, output). Changing slider.value updates html.value at once; the
    picture is redrawn into the Output. Tests set the slider and read html.value.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    M = lowrank._matrix(W)
    full = min(M.shape)
    # long enough for every rank to get its own stop (about 10 px each for 64 ranks); the default
    # slider (about 300 px) gave 64 ranks under 5 px each, too short to pick one with the mouse
    slider = widgets.IntSlider(value=max(0, min(initial, full)), min=0, max=full, step=1,
                               description="rank r", continuous_update=False,
                               style={"description_width": "initial"},   # the track gets the room
                               layout=widgets.Layout(width=slider_width(full)))
    html = widgets.HTML()
    output = widgets.Output()

    def update(change=None):
        view = rank_view(M, slider.value)
        html.value = SUMMARY_STYLE + summary_html(view)
        with output:
            output.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(8, 2.6))
            _draw(axes, M, view, title)
            fig.tight_layout()
            plt.show()

    slider.observe(update, names="value")
    update()
    container = widgets.VBox([slider, html, output])
    container.add_class(EXPLORER_CLASS)            # for SUMMARY_STYLE, and tests/browser/check_frontends.py
    return container, slider, html, output


__all__ = ["rank_view", "summary_html", "static_figure", "build", "slider_width"]
