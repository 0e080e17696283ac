"""The server's threads: numpy's BLAS runs on one thread while a server runs (its spinning
workers cost a third of a speaker-tagged stream's CPU, bench/RESULTS.md), and is given back after."""
from __future__ import annotations

from server_fixtures import server_factory  # noqa: F401  (fixture)
from threadpoolctl import threadpool_info


def blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_running_servers_keep_blas_on_one_thread_until_the_last_stops(server_factory):  # noqa: F811
    before = blas_threads()
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    first, second = server_factory(), server_factory()
    assert blas_threads() == {1}
    first.close()
    assert blas_threads() == {1}  # the second still runs
    second.close()
    assert blas_threads() == before
