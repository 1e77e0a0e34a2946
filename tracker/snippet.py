"""What the website embeds: tracker.js (minified once, with an ETag), the 1x1 pixel GIF,
and the demo pages."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

import rjsmin

from .settings import Settings

# The smallest transparent 1x1 GIF.
PIXEL_GIF: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
DEMO_PAGES: Final = {"article": "article.html", "listing": "listing.html"}


@dataclass(frozen=True, slots=True)
class Snippet:
    script: bytes
    etag: str
    demo_pages: dict[str, bytes]

    @classmethod
    def build(cls, settings: Settings) -> Snippet:
        static = resources.files("tracker") / "static"
        source = (static / "tracker.js").read_text(encoding="utf-8")
        source = source.replace("__RESPECT_DNT__", "1" if settings.respect_dnt else "0")
        script = rjsmin.jsmin(source).encode()
        etag = '"' + hashlib.blake2b(script, digest_size=12).hexdigest() + '"'
        demo = {}
        if settings.demo:
            demo = {name: (static / file).read_bytes() for name, file in DEMO_PAGES.items()}
        return cls(script=script, etag=etag, demo_pages=demo)
