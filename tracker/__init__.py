"""tracker: the view and share counter behind a news site's article pages."""

__version__ = "0.1.0"
