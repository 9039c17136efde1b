"""The review's JupyterLab findings on the chapter 02-03 explorers, checked headlessly: the memory
table is HTML cells (not one long preformatted line), pie labels never overlap, an invalid setting
clears the old figure, and the rank slider gives 64 ranks room."""

import itertools

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from minift.course.widgets import params_explorer as pe  # noqa: E402
from minift.course.widgets import rank_explorer  # noqa: E402


def test_memory_table_is_html_cells_that_can_wrap_or_scroll():
    result = pe.explore(d=1600, layers=48, heads=25, vocab=50257, max_len=1024, seq=512)
    html = pe.html(result)
    assert "<pre" not in html and html.count("<table") == 2
    assert "overflow-x: auto" in html                       # a last resort on a narrow screen
    for method in pe.METHODS:
        assert result["methods"][method]["label"] in html
    # no cell holds more than ~40 characters of text: nothing forces a line wider than the window
    import re
    cells = re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", html)
    assert cells and max(len(c) for c in cells) <= 40


@pytest.mark.parametrize("preset", list(pe.PRESETS))
def test_pie_labels_never_overlap(preset):
    import matplotlib.pyplot as plt

    settings = dict(pe.PRESETS[preset])
    vocab = settings.pop("vocab") or 512
    settings.pop("ff_ratio")
    result = pe.explore(vocab=vocab, **settings)
    fig = pe.figure(result)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        pie = fig.axes[0]
        texts = [t for t in pie.texts if t.get_text()]
        boxes = [t.get_window_extent(renderer) for t in texts]
        for (a, ta), (b, tb) in itertools.combinations(zip(boxes, texts), 2):
            assert not a.overlaps(b), (preset, ta.get_text(), tb.get_text())
        assert pie.get_legend() is not None                  # every part is named beside the pie
        assert len(pie.get_legend().get_texts()) == len([v for v in result["parts"].values() if v > 0])
    finally:
        plt.close(fig)


def test_an_invalid_setting_clears_the_old_figure_and_shows_the_error():
    explorer = pe.build("minift causal-base", show_plot=True)
    cleared = []
    real_clear = explorer.plot.clear_output
    explorer.plot.clear_output = lambda *a, **k: (cleared.append(k.get("wait", False)), real_clear(*a, **k))
    assert explorer.result is not None
    explorer.controls["heads"].value = 7                                # 128 is not divisible by 7
    assert "divisible" in explorer.output.value and "<table" not in explorer.output.value
    assert cleared == [False] and explorer.plot.outputs == () and explorer.result is None   # cleared at once
    explorer.controls["heads"].value = 8                                # a valid value draws again
    assert explorer.result is not None and "<table" in explorer.output.value


def test_rank_slider_gives_64_ranks_room():
    container, slider, html, output = rank_explorer.build(torch.randn(64, 96))
    assert slider.max == 64
    width = slider.layout.width
    assert width.startswith("min(100%") and int(width.split(",")[1].strip(" px)")) >= 10 * 64
    assert rank_explorer.slider_width(4) == "min(100%, 320px)"
