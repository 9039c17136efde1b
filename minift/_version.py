"""The package version, in a module of its own so the course wing can read it without importing the
package's front door (``minift/__init__.py``)."""

__version__ = "0.1.0"
