"""The benchmark command runs (for a second per workload): its numbers are not judged here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_runs_and_prints_the_ratio_table(redis_url: str, admin_database_url: str) -> None:
    if shutil.which("wrk") is None and not os.environ.get("CI"):
        pytest.skip("wrk is not installed (.ci/run installs it)")
    result = subprocess.run(
        [
            sys.executable, "-m", "bench", "--seconds", "1", "--warmup", "0",
            "--only", "ceiling,tracker", "--connections", "8", "--rounds", "1",
            "--redis-url", redis_url, "--database-url", admin_database_url,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x ceiling rps" in result.stdout
    for workload in ("uniform", "hot", "batch100", "stats", "stats100"):
        assert workload in result.stdout
