"""Probe explorer (chapter 07): choose a feature and a model, see probe accuracy per layer before and
after fine-tuning, with the control task and the majority baseline.

    from minift.course.widgets import ch07_probes
    ch07_probes.static_figure(results)                  # works everywhere (GitHub, no widgets)
    ch07_probes.build(results)                          # two dropdowns + a live plot in Jupyter

``results`` is what chapter 07 computes: ``{model: {feature: curves}}`` where curves is a dict with
"before" (probe accuracy per layer on the source model), "control" (the control task, per layer),
"majority" (a number) and optionally "after" (per layer, after fine-tuning) and "kind" ("surface" or
"semantic"). ``probe_view`` is the pure part the tests check; ``build`` only wires it to ipywidgets.
"""

from __future__ import annotations

import math

CURVES = ("before", "after", "control")
# ipywidgets gives HTML content a 28-px line height (one widget row): the two-line summary was
# double-spaced (seen in JupyterLab and Notebook 7 in headless Chromium, tests/browser/check_frontends.py)
EXPLORER_CLASS = "minift-probe-explorer"
SUMMARY_STYLE = f"<style>.{EXPLORER_CLASS} .widget-html-content {{line-height: 1.4;}}</style>"
STYLES = {"before": ("o-", "C0", "source model"), "after": ("s-", "C3", "after fine-tuning"),
          "control": ("^--", "0.5", "control task (source model)")}


def _check_results(results) -> dict:
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict {model: {feature: curves}}")
    for model, features in results.items():
        if not isinstance(features, dict) or not features:
            raise ValueError(f"results[{model!r}] must be a non-empty dict {{feature: curves}}")
        for feature, curves in features.items():
            if "before" not in curves:
                raise ValueError(f"results[{model!r}][{feature!r}] has no 'before' curve")
    return results


def probe_view(results, model: str, feature: str) -> dict:
    """Everything the explorer shows for one (model, feature): the curves, the layers, the best layer
    and its selectivity, and a one-line summary. A model without that feature gives a view whose
    "available" is False and whose summary says why (the widget shows it instead of a stale plot)."""
    results = _check_results(results)
    if model not in results:
        raise ValueError(f"unknown model {model!r}; available: {sorted(results)}")
    curves = results[model].get(feature)
    if curves is None:
        return {"model": model, "feature": feature, "available": False, "curves": {}, "layers": [],
                "summary": f"<b>{feature}</b> was not probed on {model}; available: "
                           f"{', '.join(sorted(results[model]))}"}
    shown = {name: [float(v) for v in curves[name]] for name in CURVES if curves.get(name) is not None}
    layers = list(range(len(shown["before"])))
    for name, values in shown.items():
        if len(values) != len(layers):
            raise ValueError(f"results[{model!r}][{feature!r}][{name!r}] has {len(values)} layers, "
                             f"'before' has {len(layers)}")
    best = max(layers, key=lambda i: shown["before"][i])
    selectivity = (shown["before"][best] - shown["control"][best]) if "control" in shown else math.nan
    text = (f"<b>{model}</b>, <b>{feature}</b> ({curves.get('kind', 'feature')}): best layer {best} "
            f"({shown['before'][best]:.2f}; majority baseline {float(curves.get('majority', math.nan)):.2f}")
    text += f"; selectivity {selectivity:+.2f})" if not math.isnan(selectivity) else ")"
    if "after" in shown:
        change = shown["after"][-1] - shown["before"][-1]
        text += f"; last layer after fine-tuning {shown['after'][-1]:.2f} ({change:+.2f})"
    return {"model": model, "feature": feature, "available": True, "curves": shown, "layers": layers,
            "best_layer": best, "selectivity": selectivity, "majority": curves.get("majority"),
            "summary": text}


def draw(ax, view: dict) -> None:
    """One panel: the curves of a probe_view, the majority baseline as a thin line."""
    if not view["available"]:
        ax.text(0.5, 0.5, "not probed", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    for name, values in view["curves"].items():
        marker, colour, label = STYLES[name]
        ax.plot(view["layers"], values, marker, color=colour, label=label, markersize=4)
    if view.get("majority") is not None:
        ax.axhline(float(view["majority"]), color="0.75", lw=1, label="majority baseline")
    ax.set_xticks(view["layers"])
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("held-out probe accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{view['feature']} · {view['model']}", fontsize=9)


def static_figure(results, features=None, models=None):
    """The static fallback: a grid (features x models) of probe curves, a legend outside the panels,
    and a printed table of the best layer per panel."""
    import matplotlib.pyplot as plt

    results = _check_results(results)
    models = list(models or results)
    features = list(features or dict.fromkeys(f for m in models for f in results[m]))
    fig, axes = plt.subplots(len(features), len(models), figsize=(3.2 * len(models), 2.4 * len(features)),
                             squeeze=False, sharey=True)
    for row, feature in zip(axes, features):
        for ax, model in zip(row, models):
            draw(ax, probe_view(results, model, feature))
    handles, labels = {}, {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=len(handles),
               bbox_to_anchor=(0.5, 1.0), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    print(f"{'feature':<16}{'model':<16}{'best layer':>11}{'accuracy':>10}{'selectivity':>13}")
    for feature in features:
        for model in models:
            view = probe_view(results, model, feature)
            if view["available"]:
                best = view["best_layer"]
                print(f"{feature:<16}{model:<16}{best:>11}{view['curves']['before'][best]:>10.2f}"
                      f"{view['selectivity']:>+13.2f}")
    return fig


def build(results, model: str | None = None, feature: str | None = None):
    """Two dropdowns (model, feature), an HTML summary and an Output with the plot, wired together.

    Returns (container, model_dropdown, feature_dropdown, html, output). Changing a dropdown updates
    html.value at once; tests set the dropdowns and read html.value.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    results = _check_results(results)
    models = list(results)
    features = list(dict.fromkeys(f for m in models for f in results[m]))
    model_box = widgets.Dropdown(options=models, value=model or models[0], description="model")
    feature_box = widgets.Dropdown(options=features, value=feature or features[0], description="feature")
    html = widgets.HTML()
    output = widgets.Output()

    def update(change=None):
        view = probe_view(results, model_box.value, feature_box.value)
        html.value = SUMMARY_STYLE + view["summary"]
        with output:
            output.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(5, 3))
            draw(ax, view)
            if view["available"]:
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
            fig.tight_layout()
            plt.show()

    model_box.observe(update, names="value")
    feature_box.observe(update, names="value")
    update()
    container = widgets.VBox([widgets.HBox([model_box, feature_box]), html, output])
    container.add_class(EXPLORER_CLASS)            # for SUMMARY_STYLE, and tests/browser/check_frontends.py
    return container, model_box, feature_box, html, output


__all__ = ["probe_view", "draw", "static_figure", "build", "CURVES"]
