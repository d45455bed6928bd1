"""PostgreSQL fixtures: one throwaway cluster per session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scaleout_tests._pg import PgCluster, PgUnavailable, acquire, release


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster on 127.0.0.1 (installed with apt-get when missing), stopped at the end."""
    try:
        cluster = acquire()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        release()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """``postgresql+psycopg2://lepton:<password>@127.0.0.1:PORT/<fresh db>``."""
    return pg_cluster.create_database()
