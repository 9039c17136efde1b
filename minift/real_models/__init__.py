"""Real pretrained models, fully offline (chapter 10): weights that ship inside pip packages, their
tokenizers written out in Python, and ``load_pretrained`` that needs no transformers at run time."""
