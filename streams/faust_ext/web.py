"""Faust's aiohttp web server with none of Faust's own pages: ccmon serves only its own.

faust-streaming mounts built-in pages next to an app's: ``/router/`` (which worker owns a key,
and the URLs of the others), ``/table/`` (the tables and any record by key: agent names, contact
ids with the customer's number in them), and, by setting or with ``debug``, sensor statistics,
the partition assignment, the service graph and ``/performance/``; with the statistics off, ``/``
answers a status. ccmon uses none of them, so this driver (``app``'s ``web`` setting,
streams/worker/faust_app.py) mounts no built-in blueprint at all, whatever a Faust setting or an
``APP_WEB_*`` variable says, and logs the routes it serves once, when the server starts: what a
worker's port answers is exactly the table in docs/security.md (tests/integration/test_web_routes.py
holds the two together).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from faust.web.drivers import DRIVERS
from faust.web.drivers.aiohttp import Web

__all__ = ["WEB_URL", "OwnPagesWeb", "routes"]

log = logging.getLogger("ccmon.web")

#: the ``web`` setting naming this driver (registered with Faust's web driver registry below)
WEB_URL = "ccmon-web://"


def routes(web_app: Any) -> list[tuple[str, str]]:
    """(path, method) of every route an aiohttp application serves, sorted."""
    out = set()
    for route in web_app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix") or "?"
        out.add((path, route.method))
    return sorted(out)


class OwnPagesWeb(Web):
    # Faust's lists of built-in blueprints (faust/web/base.py), read when the driver is made;
    # pinned by tests/unit/test_faust_private_api.py
    default_blueprints: ClassVar[list[tuple[str, Any]]] = []
    production_blueprints: ClassVar[list[tuple[str, Any]]] = []
    debug_blueprints: ClassVar[list[tuple[str, Any]]] = []
    optional_blueprints: ClassVar[list[tuple[str, Any]]] = []

    def init_server(self) -> None:
        super().init_server()
        served: dict[str, list[str]] = {}
        for path, method in routes(self.web_app):
            served.setdefault(path, []).append(method)
        log.info("web routes: %s", " ".join(f"{p}[{','.join(m)}]" for p, m in served.items()))


# Faust finds the web driver by the scheme of the ``web`` setting (faust.web.drivers.by_url)
DRIVERS.aliases.setdefault(WEB_URL.split(":", 1)[0], f"{__name__}:OwnPagesWeb")
