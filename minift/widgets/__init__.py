"""Interactive explorers for the notebooks (ipywidgets), one module per chapter that needs one.

Every explorer has a pure function that computes what it shows (tested headlessly) and a static
fallback, so a notebook read on GitHub or run without widgets still shows the numbers.
"""
