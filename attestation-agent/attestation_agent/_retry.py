"""When the agent tries a broker again: one schedule that the blocking client (`kbs_client.KbsClient`) and the
service's session (`service._session.KbsSession`) both follow, each with its own figures, so the two loops around
handshakes and resource fetches cannot drift apart in how they count attempts and wait.

>>> waits = Backoff(attempts=3, first=0.1, most=1.0).start()
>>> waits.after(), waits.after(), waits.after()
(0.1, 0.2, None)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["MAX_RETRY_AFTER_SECONDS", "Backoff", "Waits"]

MAX_RETRY_AFTER_SECONDS = 30.0  # a broker's Retry-After is honoured up to this


@dataclass(frozen=True)
class Backoff:
    """`attempts` in all; the wait after a failed one starts at `first` seconds and doubles up to `most`. With
    `jitter`, each wait is drawn from its upper half, so that guests a broker failure cut off at once do not all come
    back at once."""

    attempts: int
    first: float
    most: float
    jitter: bool = False

    def start(self) -> Waits:
        """The waits of one request's (or handshake's) attempts."""
        return Waits(self)


class Waits:
    """The attempts of one request, as they fail."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._failed = 0
        self._delay = backoff.first

    def after(self, retry_after: float | None = None) -> float | None:
        """Seconds to wait after a failed attempt before the next one (at least the broker's `retry_after`, up to
        MAX_RETRY_AFTER_SECONDS), or None when that was the last attempt."""
        self._failed += 1
        if self._failed >= self._backoff.attempts:
            return None
        delay = self._delay
        self._delay = min(delay * 2, self._backoff.most)
        if self._backoff.jitter:
            delay *= random.uniform(0.5, 1.0)  # noqa: S311 (timing, not secrecy)
        return max(min(retry_after or 0.0, MAX_RETRY_AFTER_SECONDS), delay)
