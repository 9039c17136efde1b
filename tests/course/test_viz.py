"""minift.course.viz: the shared plotting helpers compute the right numbers and draw what they say."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from minift.course import viz  # noqa: E402
from minift.train import History  # noqa: E402


def teardown_function(_):
    plt.close("all")


def test_smooth_is_a_trailing_mean_of_the_same_length():
    values = [1.0, 3.0, 5.0, 7.0]
    assert np.allclose(viz.smooth(values, 1), values)
    assert np.allclose(viz.smooth(values, 2), [1.0, 2.0, 4.0, 6.0])
    assert np.allclose(viz.smooth(values, 10), [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="window"):
        viz.smooth(values, 0)


def test_spread_std_and_minmax_ignore_nan():
    runs = [[1.0, 2.0, np.nan], [3.0, 2.0, np.nan]]
    centre, low, high = viz.spread(runs)
    assert np.allclose(centre[:2], [2.0, 2.0]) and np.allclose(low[:2], [1.0, 2.0]) and np.allclose(high[:2], [3.0, 2.0])
    assert np.isnan(centre[2])
    centre, low, high = viz.spread([[1.0, 5.0], [2.0, 4.0], [6.0, 4.5]], kind="minmax")
    assert np.allclose(centre, [3.0, 4.5]) and np.allclose(low, [1.0, 4.0]) and np.allclose(high, [6.0, 5.0])
    with pytest.raises(ValueError, match="kind"):
        viz.spread(runs, kind="iqr")


def test_plot_with_spread_draws_mean_and_band_and_checks_shapes():
    fig, ax = viz.plot_with_spread([10, 100, 1000], [[0.4, 0.6, 0.8], [0.5, 0.7, 0.9]], label="fine-tuned")
    line = ax.get_lines()[0]
    assert np.allclose(line.get_ydata(), [0.45, 0.65, 0.85])
    assert len(ax.collections) == 1                       # the band
    assert "2 seeds" in line.get_label()
    _, ax2 = viz.plot_with_spread([1, 2], [0.1, 0.2], label="one seed")
    assert len(ax2.collections) == 0 and ax2.get_lines()[0].get_label() == "one seed"
    with pytest.raises(ValueError, match="shape"):
        viz.plot_with_spread([1, 2, 3], [[1.0, 2.0]])


def test_plot_history_uses_loss_and_accuracy():
    history = History(train_step=list(range(20)), train_loss=list(np.linspace(2, 1, 20)),
                      eval_step=[10, 20], eval_loss=[1.5, 1.0], eval_accuracy=[0.5, 0.75])
    fig, ax = viz.plot_history(history, title="demo")
    assert ax.get_title() == "demo" and "loss" in ax.get_ylabel()
    assert len(fig.axes) == 2                             # a second axis for accuracy
    assert np.allclose(fig.axes[1].get_lines()[0].get_ydata(), [50.0, 75.0])
    fig, ax = viz.plot_history(history.to_dict(), accuracy=False)
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no training steps"):
        viz.plot_history(History())


def test_chance_line_and_table():
    _, ax = plt.subplots()
    viz.chance_line(ax, 1 / 3)
    assert np.isclose(ax.get_lines()[0].get_ydata()[0], 100 / 3)
    with pytest.raises(ValueError):
        viz.chance_line(ax, 2.0)
    text = viz.table([{"name": "a", "params": 1234, "acc": 0.5}, {"name": "bb", "params": 5, "acc": float("nan")}])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "params", "acc"]
    assert "1,234" in lines[2] and "0.500" in lines[2] and "nan" in lines[3]
    assert viz.table([]) == "(no rows)"
    with pytest.raises(ValueError, match="columns"):
        viz.table([[1, 2]])
    assert viz.table([[1, 2.0]], columns=["x", "y"]).splitlines()[2].split() == ["1", "2.000"]
