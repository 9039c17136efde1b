"""Assertions the checker tests share: run a checker silently, and require a named mistake."""


def quiet(check, fn):
    """The checker's verdict without printing it."""
    return check(fn, quiet=True)


def assert_mistake(verdict, *words):
    """The verdict is a mistake whose text names every one of ``words`` (case-insensitive)."""
    assert verdict.status == "mistake", str(verdict)
    text = str(verdict).lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in: {verdict}"
