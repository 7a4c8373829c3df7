"""The supervisor pages load only what the worker serves beside them (streams/wallboard SHARED):
no asset from the internet, none missing from the package."""

from __future__ import annotations

import re
from importlib import resources

from streams.wallboard import SHARED, shared
from streams.wallboard import agents as agent_view
from streams.wallboard import queues as queue_view


def test_every_asset_a_page_loads_is_one_the_worker_serves():
    for page in (queue_view.page(), agent_view.page()):
        assets = set(re.findall(rb'(?:src|href)="([^"]+)"', page))
        links = {a for a in assets if not a.endswith((b".js", b".css"))}  # the pages link each other
        assert {a.decode() for a in assets - links} == set(SHARED)
        assert all(b"/" not in a and b":" not in a for a in assets)  # relative: beside the page
    for name in SHARED:
        assert shared(name) == resources.files("streams.wallboard").joinpath(name).read_bytes() != b""
