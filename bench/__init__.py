"""Benchmarks: tracker against a bare aiohttp ceiling and naive designs, side by side."""
