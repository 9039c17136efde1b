"""Fixtures shared by the unit tests (tests/core: the library; tests/course: the course wing)."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests with the CPU thread count the course uses (its one rule lives in
    minift.course.setup.choose_threads: 1 thread on CPU, or $MINIFT_THREADS). Tiny models run fastest
    single-threaded, and are not slowed by other jobs on the machine. The count is restored afterwards."""
    from minift.course.setup import set_threads

    threads = torch.get_num_threads()
    set_threads("cpu")
    yield
    torch.set_num_threads(threads)


# --- real pretrained weights (chapter 10) -----------------------------------------------------------
# They ship in pip packages that `make test` installs. A user who skipped them (make test REAL_WEIGHTS=0)
# sees these tests skipped with the pip command; `make test` sets MINIFT_REAL_WEIGHTS=required, so in CI
# a missing package is a failure, not a silent skip.

def real_weights_path(name: str):
    """The packaged weights of ``name`` (see minift.real_models.packages), or skip / fail as above."""
    import os

    from minift.real_models.packages import locate

    try:
        return locate(name)
    except (ModuleNotFoundError, FileNotFoundError) as error:
        if os.environ.get("MINIFT_REAL_WEIGHTS") == "required":
            pytest.fail(f"MINIFT_REAL_WEIGHTS=required but {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def minilm_path():
    return real_weights_path("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def smollm2_path():
    path = real_weights_path("smollm2-135m-instruct")
    try:
        import gguf  # noqa: F401
    except ImportError:
        if __import__("os").environ.get("MINIFT_REAL_WEIGHTS") == "required":
            pytest.fail("MINIFT_REAL_WEIGHTS=required but gguf is not installed")
        pytest.skip("gguf is not installed (pip install gguf)")
    return path
