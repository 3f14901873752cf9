"""The client address behind trusted proxies, the in-process token bucket's Retry-After, and the histogram format."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kbs._limits import ClientAddress, Metrics, RateLimiter
from kbs.errors import KbsError


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {"client": (peer, 4711), "headers": [(k.encode(), v.encode()) for k, v in headers]}


def test_headers_ignored_without_trusted_proxies() -> None:
    assert ClientAddress([]).of(scope("127.0.0.1", ("x-forwarded-for", "192.0.2.1"))) == "127.0.0.1"


def test_headers_ignored_from_an_untrusted_peer() -> None:
    address = ClientAddress(["10.0.0.0/8"])
    assert address.of(scope("198.51.100.9", ("x-forwarded-for", "192.0.2.1"))) == "198.51.100.9"


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ((("x-forwarded-for", "203.0.113.5, 192.0.2.1, 10.0.0.2"),), "192.0.2.1"),
        ((("x-forwarded-for", "203.0.113.5"), ("x-forwarded-for", "192.0.2.1")), "192.0.2.1"),
        ((("forwarded", 'for="[2001:db8::1]:4711";proto=https, for=10.0.0.2'),), "2001:db8::1"),
        ((("forwarded", "for=192.0.2.1:80"), ("x-forwarded-for", "203.0.113.5")), "192.0.2.1"),
        ((("x-forwarded-for", "10.0.0.3, 10.0.0.2"),), "10.0.0.3"),
        ((), "10.0.0.1"),
    ],
)
def test_rightmost_untrusted_hop_from_a_trusted_proxy(headers: tuple[tuple[str, str], ...], client: str) -> None:
    assert ClientAddress(["10.0.0.0/8"]).of(scope("10.0.0.1", *headers)) == client


def test_in_process_bucket_refuses_with_retry_after() -> None:
    limiter = RateLimiter({"auth": 6})  # 0.1 a second, a burst of 1
    asyncio.run(limiter.check("auth", "a"))
    with pytest.raises(KbsError) as refused:
        asyncio.run(limiter.check("auth", "a"))
    assert refused.value.status == 429
    assert refused.value.retry_after is not None
    assert 1 <= refused.value.retry_after <= 10
    asyncio.run(limiter.check("auth", "b"))  # another client
    asyncio.run(limiter.check("attest", "a"))  # a bucket with no rate is not limited


def test_histogram_text_format() -> None:
    metrics = Metrics(buckets=(0.1, 1.0))
    metrics.observe("latency_seconds", 0.05, route="/x")
    metrics.observe("latency_seconds", 0.1, route="/x")
    metrics.observe("latency_seconds", 5.0, route="/x")
    metrics.inc("hits_total", route='a"b')
    assert metrics.render().splitlines() == [
        "# TYPE hits_total counter",
        'hits_total{route="a\\"b"} 1',
        "# TYPE latency_seconds histogram",
        'latency_seconds_bucket{route="/x",le="0.1"} 2',
        'latency_seconds_bucket{route="/x",le="1.0"} 2',
        'latency_seconds_bucket{route="/x",le="+Inf"} 3',
        'latency_seconds_sum{route="/x"} 5.15',
        'latency_seconds_count{route="/x"} 3',
    ]
