"""The chapter-07 probe explorer, headless: the pure view, the static figure and the widget callbacks."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")

from minift.course.widgets import ch07_probes  # noqa: E402

RESULTS = {
    "causal-small": {
        "position": {"before": [0.9, 0.8, 0.7], "control": [0.6, 0.5, 0.5], "majority": 0.4,
                     "after": [0.9, 0.7, 0.5], "kind": "surface"},
        "sentiment": {"before": [0.5, 0.6, 0.7], "control": [0.3, 0.3, 0.4], "majority": 0.34,
                      "kind": "semantic"},
    },
    "encoder-base": {
        "position": {"before": [1.0, 0.95, 0.9, 0.85], "control": [0.7, 0.6, 0.6, 0.6], "majority": 0.4},
    },
}


def test_probe_view_picks_the_best_layer_and_selectivity():
    view = ch07_probes.probe_view(RESULTS, "causal-small", "sentiment")
    assert view["available"] and view["best_layer"] == 2
    assert view["selectivity"] == pytest.approx(0.3)
    assert "after" not in view["curves"]
    view = ch07_probes.probe_view(RESULTS, "causal-small", "position")
    assert view["best_layer"] == 0 and "(-0.20)" in view["summary"]          # 0.5 after vs 0.7 before


def test_probe_view_of_a_missing_feature_says_so():
    view = ch07_probes.probe_view(RESULTS, "encoder-base", "sentiment")
    assert not view["available"] and "not probed" in view["summary"]
    with pytest.raises(ValueError, match="unknown model"):
        ch07_probes.probe_view(RESULTS, "causal-huge", "position")
    with pytest.raises(ValueError, match="layers"):
        ch07_probes.probe_view({"m": {"f": {"before": [1, 2], "control": [1]}}}, "m", "f")


def test_static_figure_has_one_panel_per_feature_and_model(capsys):
    fig = ch07_probes.static_figure(RESULTS)
    assert len(fig.axes) == 4
    printed = capsys.readouterr().out
    assert "encoder-base" in printed and "+0.30" in printed


def test_widget_callbacks_update_the_summary():
    pytest.importorskip("ipywidgets")
    _, model_box, feature_box, html, _ = ch07_probes.build(RESULTS)
    assert "causal-small" in html.value and "position" in html.value
    feature_box.value = "sentiment"
    assert "sentiment" in html.value and "best layer 2" in html.value
    model_box.value = "encoder-base"
    assert "not probed" in html.value
    feature_box.value = "position"
    assert "encoder-base" in html.value and "best layer 0" in html.value
    assert not math.isnan(ch07_probes.probe_view(RESULTS, "encoder-base", "position")["selectivity"])
