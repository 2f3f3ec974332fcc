"""The service's tables and API schemas (SQLModel), one module per concern.

Importing this package registers every table on `SQLModel.metadata`, which Alembic's
`target_metadata` and the tests compare migrations against.
"""

from api.models.accounts import (
    AccountAction,
    AccountAudit,
    SsoAttempt,
    StaffAccount,
    StaffAccountPublic,
)
from api.models.anchoring import AnchorContract, AnchorHistory, AnchoringStatus
from api.models.assets import Asset, AssetClass, AssetShare, AssetStatus, HolderKind
from api.models.broker import BrokerStatus
from api.models.clients import ApiClient, ApiClientPublic, Scope, WebSession
from api.models.custody import (
    Alert,
    AlertAction,
    CustodyEventRow,
    Decision,
    DeskSession,
    LogNode,
    LogState,
    ManualEntry,
    Refusal,
    RegistryRecordRow,
    Transfer,
)
from api.models.evidence import EvidenceDisposal, EvidenceReference, EvidenceRoomAccess
from api.models.health import ReaderHealth
from api.models.ingest import (
    DeviceCursor,
    ForeignSighting,
    IngestedObservation,
    QuarantinedMessage,
    SequenceGap,
    Sighting,
)
from api.models.inventories import Inventory
from api.models.maintenance import (
    MaintenanceSchedule,
    MaintenanceWork,
    Reservation,
    ReservationAudit,
)
from api.models.people import Badge, Person, PersonSecret
from api.models.planning import NoneInStore
from api.models.registry import Agency, Reader, ReaderRole, ReaderStatus, Site
from api.models.webhooks import WebhookDelivery, WebhookEvent, WebhookSubscription
from api.models.witnesses import CheckpointCosignature

__all__ = [
    "AccountAction",
    "AccountAudit",
    "Agency",
    "Alert",
    "AlertAction",
    "AnchorContract",
    "AnchorHistory",
    "AnchoringStatus",
    "ApiClient",
    "ApiClientPublic",
    "Asset",
    "AssetClass",
    "AssetShare",
    "AssetStatus",
    "Badge",
    "BrokerStatus",
    "CheckpointCosignature",
    "CustodyEventRow",
    "Decision",
    "DeskSession",
    "DeviceCursor",
    "EvidenceDisposal",
    "EvidenceReference",
    "EvidenceRoomAccess",
    "ForeignSighting",
    "HolderKind",
    "IngestedObservation",
    "Inventory",
    "LogNode",
    "LogState",
    "MaintenanceSchedule",
    "MaintenanceWork",
    "ManualEntry",
    "NoneInStore",
    "Person",
    "PersonSecret",
    "QuarantinedMessage",
    "Reader",
    "ReaderHealth",
    "ReaderRole",
    "ReaderStatus",
    "Refusal",
    "RegistryRecordRow",
    "Reservation",
    "ReservationAudit",
    "Scope",
    "SequenceGap",
    "Sighting",
    "Site",
    "SsoAttempt",
    "StaffAccount",
    "StaffAccountPublic",
    "Transfer",
    "WebSession",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
]
