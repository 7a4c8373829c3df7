"""``ccmon ingest webhooks``: platforms that push their events (HTTP POST, signed, at least once,
out of order). The table below is the list of platforms: one line each (the interface a platform
implements is in ``platform.py``)."""

from __future__ import annotations

import importlib

from producers.sources.webhooks.platform import Platform

#: platform name (its route is /webhooks/<name>) -> "module:class"; imported only when enabled
PLATFORMS: dict[str, str] = {
    "chatwoot": "producers.sources.webhooks.chatwoot:Chatwoot",
    "libredesk": "producers.sources.webhooks.libredesk:Libredesk",
    "twilio": "producers.sources.webhooks.twilio:Twilio",
    "amazon_connect": "producers.sources.webhooks.amazon_connect:AmazonConnect",
}


def platform_class(name: str) -> type[Platform]:
    module, _, cls = PLATFORMS[name].partition(":")
    found: type[Platform] = getattr(importlib.import_module(module), cls)
    return found
