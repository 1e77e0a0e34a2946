"""What the website embeds: tracker.js (minified once, with an ETag), the 1x1 pixel GIF,
and the demo pages."""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

from calmjs.parse import es5
from calmjs.parse.unparsers.es5 import minify_print

from tracker.core.settings import Settings

# The smallest transparent 1x1 GIF.
PIXEL_GIF: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
DEMO_PAGES: Final = {"article": "article.html", "listing": "listing.html"}


@functools.cache
def minified(source: str) -> str:
    """tracker.js minified, its local names shortened (once per process: it takes a
    parse of a fifth of a second)."""
    return str(minify_print(es5(source), obfuscate=True, obfuscate_globals=False))


@dataclass(frozen=True, slots=True)
class Snippet:
    script: bytes
    etag: str
    # Subresource Integrity: `sha384-<base64>` of `script`, as a page's integrity= wants.
    integrity: str
    demo_pages: dict[str, bytes]

    @classmethod
    def build(cls, settings: Settings) -> Snippet:
        static = resources.files("tracker") / "static"
        source = (static / "tracker.js").read_text(encoding="utf-8")
        source = source.replace("__RESPECT_DNT__", "1" if settings.respect_dnt else "0")
        script = minified(source).encode()
        etag = '"' + hashlib.blake2b(script, digest_size=12).hexdigest() + '"'
        integrity = "sha384-" + base64.b64encode(hashlib.sha384(script).digest()).decode()
        demo = {}
        if settings.demo:
            demo = {name: (static / file).read_bytes() for name, file in DEMO_PAGES.items()}
        return cls(script=script, etag=etag, integrity=integrity, demo_pages=demo)
