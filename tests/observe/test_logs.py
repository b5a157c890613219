"""The JSON log path: cached timestamp text and secret-name checks stay exact."""

from __future__ import annotations


def test_timestamp_cache_matches_strftime_across_second_boundaries() -> None:
    import time

    from gateway.observe.logs import _iso_ts

    base = 1_790_000_000.0
    for created in (base, base + 0.999, base + 1.0, base + 0.5, base + 3600.001, base - 0.001):
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(created)))
        assert _iso_ts(created) == f"{whole}.{int(created * 1000) % 1000:03d}Z"


def test_secret_field_names_are_redacted_every_time() -> None:
    from gateway.observe.logs import REDACTED, _clean

    for _ in range(3):  # the second and later lookups come from the cache
        assert _clean("sip_password", "hunter2") == REDACTED
        assert _clean("state", "listening") == "listening"
