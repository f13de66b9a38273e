"""Fleet scans: an inventory of endpoints, a job run over it from one or several vantage
points (in-process on the asyncio engine, or on Celery agents behind a Redis broker), and
the SQLite results store that only the coordinator writes (docs/fleet.md)."""
