"""The throwaway PostgreSQL database a benchmark starts from."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def reset_postgres(url: str) -> None:
    """Drop and create the database (only one whose name says it is a bench DB)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to reset database {name!r}: use a throwaway one with 'bench' in its name")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_redis_prefix(url: str, prefix: str) -> int:
    """Delete the broker keys a benchmark made under its own key prefix (never others)."""
    import redis

    if not prefix.startswith("rbbench-"):
        raise ValueError(f"not a benchmark key prefix: {prefix!r}")
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    return client.delete(*keys) if keys else 0
