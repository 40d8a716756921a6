"""The bounded cache behind the page and photo caches: time-to-live, bounds, clear-vs-load."""

from __future__ import annotations

import pytest

from webapp.bounded_cache import BoundedCache


def sized_by_length(**options) -> BoundedCache:
    return BoundedCache(size_of=len, **{"max_entries": 100, "max_bytes": 1000, **options})


def test_entries_expire_after_the_time_to_live():
    now = [100]
    cache = sized_by_length(ttl_seconds=2, clock=lambda: now[0])
    loads = []

    def load():
        loads.append(now[0])
        return f"value {len(loads)}"

    assert cache.get_or_load("page-1", load) == "value 1"
    now[0] += 1
    assert cache.get_or_load("page-1", load) == "value 1"
    assert cache.get_or_load("page-2", load) == "value 2"  # keys are independent
    now[0] += 1  # exactly at expiry: stale
    assert cache.get_or_load("page-1", load) == "value 3"
    assert cache.get("page-2") == "value 2"
    now[0] += 1
    assert cache.get("page-2") is None
    assert loads == [100, 101, 102]


def test_without_a_time_to_live_entries_stay_until_evicted():
    now = [0]
    cache = sized_by_length(ttl_seconds=None, clock=lambda: now[0])
    cache.put("photo", b"bytes")
    now[0] += 10**9
    assert cache.get("photo") == b"bytes"


@pytest.mark.parametrize("off", [{"ttl_seconds": 0}, {"max_entries": 0}, {"max_bytes": 0}])
def test_zero_turns_the_cache_off(off):
    cache = sized_by_length(**off)
    values = iter(["a", "b", "c"])
    assert [cache.get_or_load("k", lambda: next(values)) for _ in range(3)] == ["a", "b", "c"]
    cache.put("k", "kept?")
    assert cache.get("k") is None
    assert len(cache) == 0


def test_negative_bounds_are_refused():
    with pytest.raises(ValueError, match="bounds"):
        BoundedCache(max_entries=-1, max_bytes=10)


def test_a_load_that_overlaps_a_clear_is_not_kept():
    cache = sized_by_length(ttl_seconds=60)
    database = ["old"]

    def load_while_another_request_commits():
        value = database[0]  # read before the other request's commit...
        database[0] = "new"
        cache.clear()  # ...which clears the cache while this load is still running
        return value

    assert cache.get_or_load("page-1", load_while_another_request_commits) == "old"
    assert cache.get_or_load("page-1", lambda: database[0]) == "new"
    assert cache.get_or_load("page-1", lambda: "not asked") == "new"


def test_nothing_is_never_kept():
    cache = sized_by_length(ttl_seconds=60)
    for page in range(1000):
        assert cache.get_or_load(page, lambda: None) is None
    assert len(cache) == 0


def test_the_cache_keeps_at_most_max_entries_dropping_the_least_recently_used():
    cache = sized_by_length(ttl_seconds=60, max_entries=3)
    for page in range(1, 5):
        cache.get_or_load(page, lambda page=page: f"page {page}")
    assert len(cache) == 3  # page 1 dropped

    assert cache.get_or_load(2, lambda: "reloaded") == "page 2"  # now the most recent
    cache.put(5, "page 5")  # drops page 3, the least recently used
    assert cache.get(3) is None
    assert [cache.get(page) for page in (2, 4, 5)] == ["page 2", "page 4", "page 5"]
    assert cache.get_or_load(1, lambda: "reloaded") == "reloaded"


def test_the_cache_keeps_at_most_max_bytes():
    cache = sized_by_length(max_bytes=10)
    cache.put("a", "aaaa")
    cache.put("b", "bbbb")
    assert cache.size_bytes == 8

    cache.put("c", "cccc")  # 12 bytes would be too many: the oldest goes
    assert cache.get("a") is None
    assert cache.size_bytes == 8
    assert len(cache) == 2

    cache.put("b", "bb")  # replacing a value counts only the new one (and makes it the newest)
    assert cache.size_bytes == 6
    cache.put("d", "dddddddd")  # needs 8 of the 10 bytes: the oldest goes, "b" still fits
    assert (cache.get("b"), cache.get("c"), cache.get("d")) == ("bb", None, "dddddddd")
    assert cache.size_bytes == 10


def test_a_value_larger_than_the_whole_cache_is_served_but_not_kept():
    cache = sized_by_length(max_bytes=10)
    cache.put("small", "tiny")
    assert cache.get_or_load("huge", lambda: "x" * 11) == "x" * 11
    assert cache.get("huge") is None
    assert cache.get("small") == "tiny"  # nothing evicted for a value that cannot fit
    assert cache.size_bytes == 4


def test_clear_empties_the_cache_and_its_byte_count():
    cache = sized_by_length()
    cache.put("a", "aaaa")
    cache.clear()
    assert (len(cache), cache.size_bytes, cache.get("a")) == (0, 0, None)
