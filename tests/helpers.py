"""Small helpers shared by tests."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tracker.app import FLUSHER
from tracker.flusher import FlushResult

Client = TestClient[web.Request, web.Application]


def view(article_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "view", "article_id": article_id, **extra}


def share(article_id: str, channel: str, **extra: Any) -> dict[str, Any]:
    return {"type": "share", "article_id": article_id, "channel": channel, **extra}


async def post_events(client: Client, *events: dict[str, Any]) -> int:
    """POST events (one object, or a batch when several); returns the HTTP status."""
    body: Any = events[0] if len(events) == 1 else {"events": list(events)}
    response = await client.post("/api/v1/events", json=body)
    return response.status


async def flush(client: Client) -> FlushResult:
    return await client.app[FLUSHER].flush_once()


async def stats(client: Client, article_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/articles/{article_id}/stats")
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result
