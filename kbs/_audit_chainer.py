"""The broker's audit chainer: a thread per worker process that runs chain passes (`Store.chain_audit`, one short
transaction a batch, kbs._audit_sequencer) off the request's path.

It runs a pass when woken by a commit that stored audit entries (`Store.audit_committed`), at start (entries a
killed replica left), and every CHAIN_INTERVAL_SECONDS in any case, so that entries committed by a replica that died
before its chainer ran are chained by the others. After a pass it lets BATCH_SECONDS go by before the next: the
commits of that time are chained together, in one transaction, instead of one each. When another replica holds the
head, the pass is tried again after BATCH_SECONDS: that replica's pass may have read the unchained entries before
this replica's commit.

    chainer = AuditChainer(store)
    chainer.start()
    ...
    chainer.stop()  # a last pass, then the thread is joined
"""

from __future__ import annotations

import logging
import threading

from .storage import StorageError, Store

__all__ = ["CHAIN_INTERVAL_SECONDS", "AuditChainer"]

log = logging.getLogger("kbs")

CHAIN_INTERVAL_SECONDS = 1.0
# The least time between two passes of one chainer. Without it a pass ran for each audited commit at moderate load
# (bench/kbs_handshake.py, 2 replicas, c=16: 1.23 chain transactions per handshake); with it a worker makes at most
# 10 a second, and an entry waits about this long more for its chaining.
BATCH_SECONDS = 0.1


class AuditChainer:
    def __init__(self, store: Store, interval: float = CHAIN_INTERVAL_SECONDS) -> None:
        self._store = store
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kbs-audit-chainer", daemon=True)

    def start(self) -> None:
        self._store.audit_committed.set()  # a first pass at once
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._store.audit_committed.set()
        self._thread.join()

    def _run(self) -> None:
        wanted = self._store.audit_committed
        while True:
            wanted.wait(self._interval)
            last = self._stopping.is_set()  # a last pass for the entries of the requests served before the stop
            wanted.clear()
            try:
                step = self._store.chain_audit()
            except StorageError as exc:
                log.warning("audit chain pass failed: %s", exc)
                if last:
                    return
                self._stopping.wait(self._interval)
                continue
            if last:
                return
            if step.held:
                wanted.set()
            self._stopping.wait(BATCH_SECONDS)
