"""orjson as a Faust codec, so table changelogs and facts are encoded by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

NAME = "orjson"


class OrjsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    if NAME not in codecs.codecs:
        codecs.register(NAME, OrjsonCodec())
