"""What the browser check (tests/browser/check_frontends.py: JupyterLab 4.6 and Notebook 7.6 in headless
Chromium, 1024x768 and 1440x900) found and what was fixed, checked headlessly so the normal test run
guards it without a browser:

- quiz radio buttons sat 4 px below their text's first line (ipywidgets makes them 20 px tall), and a
  checkbox sat between the two lines of a two-line option (ipywidgets centres it);
- HTML in a widget inherits a 28-px line height: wrapped quiz prompts and feedback, the explorers'
  tables and summaries (chapters 02, 03, 07) were double-spaced;
- chapter 02's memory table (a row per method, eight columns) ran past the notebook's edge in a 1024-px
  JupyterLab window, clipped rather than scrolled (the HTML widget's content would not shrink);
- chapter 02's figure, 10 inches wide, was shrunk to ~60% at 1024 px, and the pie's legend covered the
  bar chart's axis label;
- arrow keys on a focused slider, dropdown or radio button go to the notebook's cell navigation in
  Notebook 7 (sliders too) and JupyterLab (dropdowns, radio buttons): a shortcut override is offered.
"""

import html.parser
import json
import sys
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from minift.course import quiz  # noqa: E402
from minift.course.widgets import ch07_probes, keyboard  # noqa: E402
from minift.course.widgets import params_explorer as pe  # noqa: E402
from minift.course.widgets import rank_explorer  # noqa: E402


def css_rule(css: str, selector_start: str) -> str:
    """The declarations of the first rule whose selector list contains ``selector_start``."""
    at = css.index(selector_start)
    return css[css.index("{", at) + 1:css.index("}", at)]


def preset_result(name: str) -> dict:
    settings = dict(pe.PRESETS[name])
    vocab = settings.pop("vocab") or 512
    return pe.explore(vocab=vocab, **settings)


class Tables(html.parser.HTMLParser):
    """Rows of cell texts, per table."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def parse_tables(text: str) -> list:
    parser = Tables()
    parser.feed(text)
    return parser.tables


# --- quiz CSS ---------------------------------------------------------------------------------------

def test_quiz_boxes_sit_on_the_first_line_of_their_option():
    """ipywidgets makes a radio button 20 px tall (4 px too low) and centres a checkbox on its label
    (between the lines of a two-line option); the rule for both inputs undoes each."""
    inputs = css_rule(quiz.WRAP_LONG_OPTIONS, ".minift-quiz .widget-radio-box input")
    assert ".minift-quiz .widget-checkbox input" in quiz.WRAP_LONG_OPTIONS.split(inputs)[0]   # same rule
    assert "height: auto" in inputs and "align-self: flex-start" in inputs and "flex-shrink: 0" in inputs


def test_quiz_html_is_not_double_spaced():
    rule = css_rule(quiz.WRAP_LONG_OPTIONS, ".minift-quiz .widget-html-content")
    assert "line-height: 1.4" in rule
    # every rule stays inside the quiz: nothing else in the notebook changes
    selectors = [part.split("{")[0] for part in quiz.WRAP_LONG_OPTIONS.removeprefix("<style>").split("}")[:-1]]
    assert all(s.strip().startswith(".minift-quiz") for sel in selectors for s in sel.split(","))


def test_quiz_widget_carries_the_style_and_keeps_checkboxes_before_text():
    question = next(q for q in quiz.load_bank("02") if q.type == "multiple")
    widget = quiz.build_widget(question)
    assert widget.container.children[0].value.startswith(quiz.WRAP_LONG_OPTIONS)
    assert "minift-quiz" in widget.container._dom_classes
    checkbox = css_rule(quiz.WRAP_LONG_OPTIONS, ".minift-quiz .widget-checkbox label")
    assert "row-reverse" not in checkbox


# --- chapter 02: the explorer's tables ----------------------------------------------------------------

@pytest.mark.parametrize("preset", list(pe.PRESETS))
def test_memory_table_has_the_methods_as_columns(preset):
    result = preset_result(preset)
    parts_table, memory_table = parse_tables(pe.html(result))
    assert memory_table[0] == [""] + [result["methods"][m]["label"] for m in pe.METHODS]
    assert [row[0] for row in memory_table[1:]] == ["trainable parameters", "% of the model", "weights",
                                                    "gradients", "optimizer states", "activations", "total"]
    assert all(len(row) == 1 + len(pe.METHODS) for row in memory_table)
    assert memory_table[1][1] == f"{result['methods']['full']['trainable']:,}"
    # a width estimate: the widest cell of each column, in characters. The browser measured the
    # GPT-3 preset's memory table at 583 px, the notebook at 590 px (JupyterLab, 1024-px window,
    # file browser open); eight columns needed about 690 px. Method names wrap (up to 9em).
    widths = [max(len(row[i]) for row in memory_table[1:]) for i in range(len(memory_table[0]))]
    assert sum(widths) <= 75, widths
    assert max(len(row) for row in parts_table) == 3


def test_explorer_html_may_shrink_and_is_not_double_spaced():
    text = pe.html(preset_result("GPT-3 175B"))
    assert text.startswith(pe.HTML_STYLE)
    rule = css_rule(pe.HTML_STYLE, f".{pe.EXPLORER_CLASS} .widget-html-content")
    assert "min-width: 0" in rule and "line-height" in rule
    assert "overflow-x: auto" in text


def test_explorer_box_has_the_class_its_style_needs_and_errors_are_styled_too():
    explorer = pe.build("minift causal-base", show_plot=False)
    assert pe.EXPLORER_CLASS in explorer.box._dom_classes
    explorer.controls["heads"].value = 7
    assert explorer.output.value.startswith(pe.HTML_STYLE) and "Cannot compute" in explorer.output.value


def test_zero_freeze_layers_column_says_nothing_trains():
    result = pe.explore(d=64, layers=2, heads=4, vocab=100, freeze_layers=0, seq=16)
    memory_table = parse_tables(pe.html(result))[1]
    freeze = [row[-1] for row in memory_table[1:]]
    assert freeze[0] == "0" and freeze[2] == "nothing trains" and set(freeze[3:]) == {"-"}


# --- chapter 02: the figure ---------------------------------------------------------------------------

@pytest.mark.parametrize("preset", list(pe.PRESETS))
def test_figure_is_narrow_stacked_and_its_legends_overlap_nothing(preset):
    import matplotlib.pyplot as plt

    fig = pe.figure(preset_result(preset))
    try:
        assert fig.get_figwidth() <= 6.5                   # ~650 px: shown at ~90% in a 1024-px window
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        pie, bars = fig.axes
        assert pie.get_position().y0 > bars.get_position().y1        # pie above the bars
        canvas = fig.bbox
        for ax, other in ((pie, bars), (bars, pie)):
            legend = ax.get_legend().get_window_extent(renderer)
            assert canvas.x0 <= legend.x0 and legend.x1 <= canvas.x1 + 1, (preset, "legend outside the figure")
            assert not legend.overlaps(other.get_tightbbox(renderer)), (preset, "legend over the other plot")
            assert not legend.overlaps(ax.get_window_extent(renderer)), (preset, "legend over its own plot")
        for text in [bars.yaxis.label, bars.title, pie.title]:
            box = text.get_window_extent(renderer)
            assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1
    finally:
        plt.close(fig)


# --- chapter 03 and 07 -----------------------------------------------------------------------------

def test_rank_explorer_summary_style_and_slider_label_width():
    container, slider, html, _ = rank_explorer.build(torch.randn(64, 96), initial=3)
    assert rank_explorer.EXPLORER_CLASS in container._dom_classes
    assert html.value.startswith(rank_explorer.SUMMARY_STYLE) and "rank 3" in html.value
    slider.value = 64
    assert html.value.startswith(rank_explorer.SUMMARY_STYLE) and "rank 64" in html.value
    assert slider.style.description_width == "initial"          # no fixed 80-px label: the track is longer


def test_probe_explorer_summary_style():
    results = {"m": {"f": {"before": [0.5, 0.7], "control": [0.5, 0.5], "majority": 0.5}}}
    container, _, _, html, _ = ch07_probes.build(results)
    assert ch07_probes.EXPLORER_CLASS in container._dom_classes
    assert html.value.startswith(ch07_probes.SUMMARY_STYLE) and "best layer 1" in html.value


# --- arrow keys: the shortcut override ----------------------------------------------------------------

def installed_arrow_bindings() -> list:
    schema = Path(sys.prefix) / "share/jupyter/lab/schemas/@jupyterlab/notebook-extension/tracker.json"
    if not schema.is_file():
        pytest.skip("JupyterLab's notebook schema is not installed in this environment")
    shortcuts = json.loads(schema.read_text())["jupyter.lab.shortcuts"]
    return [s for s in shortcuts if len(s["keys"]) == 1 and s["keys"][0] in keyboard.ARROW_COMMANDS]


def test_override_replaces_exactly_the_installed_arrow_key_bindings():
    bindings = installed_arrow_bindings()
    overrides = keyboard.shortcut_overrides()["shortcuts"]
    disabled = [s for s in overrides if s.get("disabled")]
    added = [s for s in overrides if not s.get("disabled")]
    strip = lambda s: (s["command"], tuple(s["keys"]), s["selector"])  # noqa: E731
    assert sorted(map(strip, disabled)) == sorted(map(strip, bindings))
    assert sorted((c, k) for c, k, _ in map(strip, added)) == sorted((c, k) for c, k, _ in map(strip, bindings))
    assert all(s["selector"] == keyboard.DEFAULT_SELECTOR + ":not(.jupyter-widgets *)" for s in added)


def test_override_selector_spares_widgets_but_not_cells():
    """The selector's meaning on a model of the notebook's DOM (soupsieve, with :focus spelled as a
    class, since a static document has no focus)."""
    soupsieve = pytest.importorskip("soupsieve")
    bs4 = pytest.importorskip("bs4")
    page = bs4.BeautifulSoup(
        "<div class='jp-Notebook jp-mod-commandMode'>"
        "<div id='cell' class='jp-Cell'><div class='jp-OutputArea'>"
        "<div class='jupyter-widgets widget-slider'><div id='handle' class='noUi-handle'></div></div>"
        "<div class='jupyter-widgets widget-dropdown'><select id='select'></select></div>"
        "<div class='jupyter-widgets minift-quiz'><div class='widget-radio'>"
        "<input id='radio' type='radio'></div></div></div></div></div>", "html.parser")
    added = next(s for s in keyboard.shortcut_overrides()["shortcuts"] if not s.get("disabled"))
    for target, expected in (("cell", True), ("handle", False), ("select", False), ("radio", False)):
        element = page.find(id=target)
        element["class"] = element.get("class", []) + ["focused"]
        for selector, spared_widgets in ((keyboard.DEFAULT_SELECTOR, False), (added["selector"], True)):
            matches = soupsieve.match(selector.replace(":focus", ".focused"), element)
            assert matches == (expected or not spared_widgets), (target, selector)
        element["class"].remove("focused")


def test_keyboard_tool_writes_the_settings_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))
    path = keyboard.settings_path()
    assert path == tmp_path / "@jupyterlab" / "shortcuts-extension" / "shortcuts.jupyterlab-settings"
    assert keyboard.main([]) == 0 and not path.exists()                     # printing writes nothing
    assert json.loads(capsys.readouterr().out.split("\n#")[0]) == keyboard.shortcut_overrides()
    assert keyboard.main(["--write"]) == 0
    assert json.loads(path.read_text()) == keyboard.shortcut_overrides()
    path.write_text('{"shortcuts": []}')
    assert keyboard.main(["--write"]) == 1 and path.read_text() == '{"shortcuts": []}'   # never overwrites
