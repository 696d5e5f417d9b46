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
