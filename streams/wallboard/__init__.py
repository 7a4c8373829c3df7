"""The supervisors' pages: the queue wallboard and the agents page, and the JSON they poll."""

from importlib import resources

#: what the two pages share (served beside them, at /NAME) → its Content-Type
SHARED = {"pages.js": "text/javascript; charset=utf-8", "pages.css": "text/css; charset=utf-8"}


def shared(name: str) -> bytes:
    """One of SHARED's files."""
    return resources.files(__name__).joinpath(name).read_bytes()
