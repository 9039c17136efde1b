"""Interactive explorers for the notebooks (ipywidgets), one module per chapter that needs one:

    params_explorer   chapter 02: where the parameters sit, what each method trains, memory per step
    rank_explorer     chapter 03: the best rank-r approximation of a matrix, with a slider
    ch07_probes       chapter 07: probe accuracy per layer, before and after fine-tuning
    keyboard          a keyboard-shortcut override so arrow keys move sliders in Notebook 7

Every explorer has a pure function that computes what it shows (tested headlessly) and a static
fallback, so a notebook read on GitHub or run without widgets still shows the numbers.
"""
