"""The chapter-03 rank explorer: the pure view, the static fallback and the widget callbacks (headless).
(Moved here from tests/core/test_lowrank.py: the explorer belongs to the course wing.)"""

import pytest
import torch

from minift.analysis import lowrank
from minift.course.widgets import rank_explorer


def low_rank_plus_noise(m=20, n=30, r=4, noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, n, generator=g, dtype=torch.float64)
    return W + noise * torch.randn(m, n, generator=g, dtype=torch.float64)


def test_rank_view_is_consistent_with_the_analysis():
    W = low_rank_plus_noise(m=8, n=10, r=2, noise=0.05)
    view = rank_explorer.rank_view(W, 2)
    assert view["error"] == pytest.approx(lowrank.reconstruction_error(W, 2))
    assert view["error"] ** 2 + view["energy"] == pytest.approx(1.0)
    assert view["factor_numbers"] == 2 * (8 + 10) and view["full_numbers"] == 80
    assert torch.allclose(view["approx"] + view["residual"], W)
    assert "rank 2" in rank_explorer.summary_html(view)


def test_rank_explorer_callbacks_headless():
    pytest.importorskip("ipywidgets")
    import matplotlib
    matplotlib.use("Agg")
    W = low_rank_plus_noise(m=8, n=10, r=2, noise=0.05)
    box, slider, html, output = rank_explorer.build(W, initial=1)
    assert slider.max == 8 and slider.value == 1
    assert "rank 1" in html.value
    slider.value = 5
    assert "rank 5" in html.value
    assert f"{lowrank.reconstruction_error(W, 5):.3f}" in html.value
    slider.value = 0
    assert "energy kept = 0.0%" in html.value


def test_static_figure(capsys):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = rank_explorer.static_figure(low_rank_plus_noise(m=8, n=10), ranks=(1, 4, 50))
    assert len(fig.axes) >= 6          # ranks larger than the matrix are skipped
    assert "rel. error" in capsys.readouterr().out
    plt.close(fig)
