"""Verifier check that an event's reads justify it, beyond being signed reads in the bundle.

What a bundle can prove about the reads an event cites (`observations`, by envelope hash):

- each was made by the reader the event names (`reader`): an event citing reads names its
  reader, and a read by another reader is another place's evidence;
- each was made within `ledger.core.read_window` of the event's time (at most `MAX_READ_AGE`
  before it, `MAX_READ_AHEAD` after it): ingest accepts no read outside that window;
- the event cites at least one read that is not a badge read (the asset's own tag);
- a badge read is cited only by an event that names authorisers (`authorised_by`), and is not
  a read of the asset's tag.

With the registry the log proves (`ledger.verify.registry`), also:

- the reader was registered in the log before the event, and its role and site fit the action
  (`ledger.core.custody_rules`: a check-out at an issue desk, a check-in at a return desk or
  locker of the site the event leaves the asset at);
- every tag read is of the asset's registered tag, as the log held it before the event;
- a check-out of an asset whose class policy, as the log held it before the event, asks for
  dual sign-off names two distinct authorisers;
- a loan goes to an agency the asset was shared with before the event;
- no event of an asset follows its retirement (`asset-retired`);
- no check-out issues an item out of service, after a failed blocking check or overdue for
  one (`ledger.verify.maintenance`);
- a manual event (entered by an officer at a desk, `manual` giving why) is of an action that
  may be entered by hand, at a desk registered before it with the role that action needs
  (`custody_rules.MANUAL_ROLES`), and names two distinct people (officer and supervisor) when
  the asset's class asks for dual sign-off.

Without a proven registry, the tag reads cited by one asset's events must only all name the
same EPC. What no bundle can prove: which authoriser a badge read belongs to (authorisers are
commitments to person ids; badges are not committed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.core.custody_rules import (
    AT_READER_SITE,
    DUAL_SIGNOFF_ACTIONS,
    DUAL_SIGNOFF_PEOPLE,
    MANUAL_ROLES,
    ROLES_FOR_ACTION,
)
from ledger.core.read_window import MAX_READ_AGE, MAX_READ_AHEAD
from ledger.core.records import CustodyEvent, Observation, parse_time
from ledger.verify.maintenance import maintenance_reason
from ledger.verify.registry import Logged, Registry

BADGE_KIND = "badge"


class Justification:
    """The asset tags seen so far, event by event in leaf order."""

    def __init__(self, known: Mapping[bytes, Observation],
                 registry: Registry | None = None) -> None:
        self._known = known
        self._registry = registry
        self._tags: dict[str, tuple[str, int]] = {}
        """asset -> (EPC of its first cited tag read, the leaf that cited it)."""
        self._times: dict[str, datetime] = {}

    def _time(self, text: str) -> datetime:
        moment = self._times.get(text)
        if moment is None:
            if len(self._times) > 4096:  # events made together share times; bound the memory
                self._times.clear()
            moment = self._times[text] = parse_time(text)
        return moment

    def reason(self, event: CustodyEvent, leaf: int) -> str | None:
        """Why the reads `event` (at `leaf`) cites do not justify it, or None. References
        missing from the bundle are the caller's failure, not checked here."""
        registry = self._registry
        if registry is not None:
            if leaf < registry.opened_leaf:
                registry.predating += 1
            broken = _policy_reason(registry, event, leaf)
            if broken is not None:
                return broken
        if event.manual is not None:
            return _manual_reason(registry, event, leaf)
        reads = [(ref, self._known[bytes.fromhex(ref)]) for ref in event.observations
                 if bytes.fromhex(ref) in self._known]
        if not reads:
            return None
        if event.reader is None:
            return f"cites observation {reads[0][0]} but names no reader"
        if registry is not None:
            unfit = _reader_reason(registry, event, leaf)
            if unfit is not None:
                return unfit
        at = self._time(event.time)
        tags = 0
        for ref, read in reads:
            short = ref[:16]
            if read.device != event.reader:
                return (f"expected observation {short}… by the event's reader "
                        f"{event.reader!r}, found one by {read.device!r}")
            observed = self._time(read.time)
            if observed < at - MAX_READ_AGE:
                return (f"observation {short}… made {read.time}, more than "
                        f"{MAX_READ_AGE.days} days before the event ({event.time})")
            if observed > at + MAX_READ_AHEAD:
                return (f"observation {short}… made {read.time}, more than "
                        f"{int(MAX_READ_AHEAD.total_seconds())} s after the event ({event.time})")
            if read.kind == BADGE_KIND:
                if not event.authorised_by:
                    return f"cites badge read {short}… but names no authoriser"
                continue
            tags += 1
            wrong = self._tag_reason(event, leaf, read, short)
            if wrong is not None:
                return wrong
        if tags == 0:
            return "cites only badge reads, no read of the asset's tag"
        tag = self._tags[event.asset][0]
        for ref, read in reads:
            if read.kind == BADGE_KIND and read.epc == tag:
                return f"badge read {ref[:16]}… is of the asset's own tag {tag}"
        return None

    def _tag_reason(self, event: CustodyEvent, leaf: int, read: Observation, short: str
                    ) -> str | None:
        """Why tag read `read` is not of the asset's tag: its registered one, or without a
        registry the one its first cited tag read named."""
        if self._registry is not None:
            record = self._registry.tag(event.asset, leaf)
            if record is None:
                return f"asset {event.asset!r} has no tag registered in the log before the event"
            epc = record.get("epc")
            self._tags[event.asset] = (epc, leaf)
            if read.epc != epc:
                return (f"expected a read of the asset's registered tag {epc}, observation "
                        f"{short}… reads {read.epc}")
            return None
        first = self._tags.setdefault(event.asset, (read.epc, leaf))
        if read.epc != first[0]:
            return (f"expected a read of the asset's tag {first[0]} (cited at leaf "
                    f"{first[1]}), observation {short}… reads {read.epc}")
        return None


def _manual_reason(registry: Registry | None, event: CustodyEvent, leaf: int) -> str | None:
    """Why a manual event could not have been entered as it claims (its record format has
    already required a desk, an officer and no reads)."""
    roles = MANUAL_ROLES.get(event.action)
    if roles is None:
        return f"{event.action} cannot be entered by hand at a desk"
    if registry is None:
        return None
    entry = registry.by_reader.get(str(event.reader))
    if entry is None or not registry.known(entry.leaf, leaf):
        return f"manual entry at desk {event.reader!r}, which the log did not register before it"
    if entry.role not in roles or (
            entry.revoked_leaf is not None and registry.known(entry.revoked_leaf, leaf)):
        return (f"manual {event.action} needs a desk of role {' or '.join(sorted(roles))} in "
                f"service, desk {entry.reader!r} is {entry.role}"
                + (" (revoked)" if entry.revoked_leaf is not None else ""))
    unfit = _reader_reason(registry, event, leaf)
    if unfit is not None:
        return unfit
    policy = _class_policy(registry, event, leaf)
    if isinstance(policy, str):
        return policy
    people = len(set(event.authorised_by))
    if policy.record.get("dual_signoff") and people < DUAL_SIGNOFF_PEOPLE:
        return (f"class policy (leaf {policy.leaf}) asks for dual sign-off: a manual entry "
                f"needs a supervisor's co-signature, the event names {people} person(s)")
    return None


def _class_policy(registry: Registry, event: CustodyEvent, leaf: int) -> Logged | str:
    """The asset's class policy in force for the event at `leaf`, or why there is none."""
    tag = registry.tag(event.asset, leaf)
    if tag is None:
        return f"asset {event.asset!r} has no tag or class registered in the log before it"
    class_id = tag.get("class")
    policy = registry.policy(class_id, leaf)
    if policy is None:
        return f"class {class_id!r} has no policy in the log before the event"
    return policy


def _reader_reason(registry: Registry, event: CustodyEvent, leaf: int) -> str | None:
    """Why the event's reader, as the log registered it, could not have made the event."""
    entry = registry.by_reader.get(str(event.reader))
    if entry is None:
        if event.reader in registry.foreign:  # another agency's: nothing here can show more
            return None
        return f"reader {event.reader!r} is not registered in the log"
    if not registry.known(entry.leaf, leaf):
        return (f"reader {entry.reader!r} was registered in the log at leaf {entry.leaf}, "
                f"after the event")
    roles = ROLES_FOR_ACTION.get(event.action)
    if roles is not None and entry.role not in roles:
        return (f"{event.action} needs a reader of role {' or '.join(sorted(roles))}, reader "
                f"{entry.reader!r} is registered as {entry.role}")
    if event.action in AT_READER_SITE:
        to = event.holder_to
        if to is None or to.kind != "location" or to.ref != entry.site:
            where = f"{to.kind} {to.ref!r}" if to is not None else "nowhere"
            return (f"reader {entry.reader!r} is registered at site {entry.site!r}, the event "
                    f"leaves the asset at {where}")
    return None


def _policy_reason(registry: Registry, event: CustodyEvent, leaf: int) -> str | None:
    """Why the event breaks its asset's class policy or shares, as the log held them."""
    retired = registry.retired.get(event.asset)
    if retired is not None and retired.leaf < leaf:
        return (f"asset {event.asset!r} was retired at leaf {retired.leaf} "
                f"({retired.record.get('reason')}): no custody event may follow")
    if event.action in DUAL_SIGNOFF_ACTIONS:
        policy = _class_policy(registry, event, leaf)
        if isinstance(policy, str):
            return policy
        people = len(set(event.authorised_by))
        if policy.record.get("dual_signoff") and people < DUAL_SIGNOFF_PEOPLE:
            return (f"class {policy.record.get('class')!r}'s policy (leaf {policy.leaf}) asks "
                    f"for dual sign-off, the event names {people} authoriser(s)")
    unserviced = maintenance_reason(registry, event, leaf)
    if unserviced is not None:
        return unserviced
    to = event.holder_to
    if (event.action == "loan_out" and to is not None and to.kind == "agency"
            and leaf > registry.opened_leaf
            and not registry.shared(event.asset, to.ref, leaf)):
        return f"loan to {to.ref!r}, which the asset was not shared with in the log before it"
    return None
