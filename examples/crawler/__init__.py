"""Crawler: fetch many pages concurrently with ``async def`` tasks, retries, per-host limits."""
