"""Alias kept for this release; use minift.course.widgets (``from minift.widgets import rank_explorer``
still works: each module here is the course wing's module under its old name)."""
