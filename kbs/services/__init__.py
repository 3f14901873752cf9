"""The broker's services, one per concern, between the HTTP routers (`kbs.api`) and storage and the verifier:

    RcarService          POST /auth, /attest: sessions, evidence binding, verification, appraisal, the EAR token
    ReleaseService       GET /resource: the caller's EAR, the resource policy, the secret as a JWE
    TpmEnrollmentService POST /tpm/enroll, /tpm/activate: AK enrolment by credential activation
    AdminService         resources, policies, reference values, signing keys, the audit log
    DecisionLog          the attestation and resource decisions recorded in those steps' writes, and their sweep
    PolicyAuthoring      explain a recorded decision; replay recorded decisions under a candidate policy
    HistoryService       (AdminService.history) their versions: list, read one, restore, roll a policy back
    Operations           readiness and the token verification keys

Services take the time as a parameter and answer every failure with a `KbsError` (trustee's error shape); they
return response models or plain values, never table rows. Storage is synchronous and so are verification and
cryptography: the routes run services in the app's thread pool (`kbs.api.deps.ApiContext.run`), never on the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..sealing import sealer_for
from ..settings import Settings
from ..signing import KeyRing
from ..storage import Store
from ..verification import VerifierInputs
from ._ear import EarView
from ._paths import policy_scope_id, resource_path, split_resource_path
from .admin import AdminService
from .audit import AuditLog, AuditRecord
from .authoring import PolicyAuthoring
from .decisions import DecisionLog
from .operations import Operations
from .policies import PolicyBook
from .rcar import RcarService
from .release import ReleaseService
from .tpm import EnrolledAkRegistry, TpmEnrollmentService

__all__ = [
    "AdminService",
    "AuditLog",
    "AuditRecord",
    "DecisionLog",
    "EarView",
    "Operations",
    "PolicyAuthoring",
    "RcarService",
    "ReleaseService",
    "Services",
    "TpmEnrollmentService",
    "build_services",
    "policy_scope_id",
    "resource_path",
    "split_resource_path",
]


@dataclass(frozen=True)
class Services:
    rcar: RcarService
    release: ReleaseService
    tpm: TpmEnrollmentService
    admin: AdminService
    operations: Operations
    decisions: DecisionLog
    authoring: PolicyAuthoring


def build_services(settings: Settings, store: Store) -> Services:
    """Wire the services over one store, migrate the schema and make sure a data key and a token signing key exist."""
    sealer = sealer_for(settings.storage, store)
    keys = KeyRing(store, sealer, settings.tokens.rotation_overlap_seconds)
    inputs = VerifierInputs(settings.verifier)
    policies = PolicyBook()
    audit = AuditLog(store)
    decisions = DecisionLog(settings.decisions, store)
    services = Services(
        rcar=RcarService(settings, store, keys, inputs, policies, EnrolledAkRegistry(store), decisions),
        release=ReleaseService(settings, store, sealer, keys, policies, audit, decisions),
        tpm=TpmEnrollmentService(store, inputs.trust.get("tpm", ()), audit),
        admin=AdminService(store, sealer, keys, audit, require_tests=settings.policies.require_tests),
        operations=Operations(store, keys, sealer),
        decisions=decisions,
        authoring=PolicyAuthoring(store, decisions),
    )
    store.migrate()
    sealer.ensure()
    keys.ensure()
    # History past its retention also goes at each admin write; at start-up for a broker that sees none for long.
    store.sweep_history(time.time())
    return services
