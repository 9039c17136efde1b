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


# --- real pretrained weights (chapter 10): see tests/real_weights.py ---------------------------------

from real_weights import real_weights_path  # noqa: E402  (tests/ is on sys.path: this conftest lives there)


@pytest.fixture(scope="session")
def minilm_path():
    return real_weights_path("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def smollm2_path():
    path = real_weights_path("smollm2-135m-instruct")
    real_weights_path("gguf")
    return path
