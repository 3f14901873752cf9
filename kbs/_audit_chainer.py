"""The broker's audit chainer: a thread per worker process that runs chain passes (`Store.chain_audit`, one short
transaction a batch, kbs._audit_sequencer) off the request's path.

It runs a pass when woken by a commit that stored audit entries (`Store.audit_committed`: commits that come while a
pass runs are coalesced into the next one, which is what batches them), at start (entries a killed replica left),
and every CHAIN_INTERVAL_SECONDS in any case, so that entries committed by a replica that died before its chainer
ran are chained by the others. When another replica holds the head, the pass retries after RETRY_SECONDS: that
replica's pass may have read the unchained entries before this replica's commit.

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
RETRY_SECONDS = 0.02


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
                self._stopping.wait(RETRY_SECONDS)
                wanted.set()
