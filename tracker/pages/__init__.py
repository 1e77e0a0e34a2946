"""The article's own page, read by tracker: the metadata it declares (tracker.js data-*,
meta tags, Open Graph, JSON-LD), taken only when it names the same article id; fetched
only from the site's origins, bounded in size, time and rate.

May import: tracker.pg, tracker.ops, tracker.events, tracker.core."""
