"""Sampled inventories: how many items to read, which ones, and what the reads say of the rest.

A large store is counted by a random sample instead of item by item (CALEA 84.1.6 allows it):
enough items to estimate the share present to a chosen confidence and margin, drawn so that an
auditor can draw the same sample again from the seed the log records, and the estimate given
with its interval. Every figure that goes into the log is an integer (basis points, counts), and
each is computed here from integers only, so the API and the verifier agree on every one.

- Size: Cochran's n0 = z^2 p (1 - p) / e^2 at the worst case p = 1/2, with the finite-population
  correction n = n0 / (1 + (n0 - 1) / N), rounded up, at most N (95 % and 3 % on 10,000 items
  give 965).
- Draw: each item id's key is SHA-256 over "kitledger/v1/inventory-sample" NUL, the seed's 32
  bytes, and the id's ASCII; the sample is the n items with the smallest keys (ties cannot
  happen between distinct ids short of a SHA-256 collision). The draw depends on the set of
  ids alone, not on their order, so the auditor needs only the population and the seed.
- Estimate: the Wilson score interval for the share found, with z^2 scaled by the
  finite-population correction (N - n) / (N - 1), as a sample without replacement varies less
  than one with; the bounds are rounded outwards to basis points. A full count (n = N) has no
  sampling error: its interval is the share itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

from ledger.core import hashing

BASIS_POINTS: Final = 10_000
SAMPLE_DOMAIN: Final = "inventory-sample"
MIN_CONFIDENCE_BP: Final = 5_000
MAX_CONFIDENCE_BP: Final = 9_990
MIN_MARGIN_BP: Final = 10
MAX_MARGIN_BP: Final = 5_000
"""The confidence (50 % to 99.9 %) and margin (0.1 % to 50 %) a sampled inventory may ask for."""


class SamplingError(ValueError):
    """Figures no sampled inventory may have."""


def _z(confidence_bp: int) -> float:
    if not MIN_CONFIDENCE_BP <= confidence_bp <= MAX_CONFIDENCE_BP:
        raise SamplingError(f"confidence must be {MIN_CONFIDENCE_BP}..{MAX_CONFIDENCE_BP} "
                            "basis points")
    return NormalDist().inv_cdf(1 - (BASIS_POINTS - confidence_bp) / (2 * BASIS_POINTS))


def sample_size(population: int, confidence_bp: int, margin_bp: int) -> int:
    """How many of `population` items to read for the share present to within `margin_bp`
    at `confidence_bp` (both in basis points)."""
    if population < 0:
        raise SamplingError("a population is a count")
    if not MIN_MARGIN_BP <= margin_bp <= MAX_MARGIN_BP:
        raise SamplingError(f"margin must be {MIN_MARGIN_BP}..{MAX_MARGIN_BP} basis points")
    z = _z(confidence_bp)
    if population == 0:
        return 0
    margin = margin_bp / BASIS_POINTS
    n0 = z * z * 0.25 / (margin * margin)
    return min(population, math.ceil(n0 / (1 + (n0 - 1) / population)))


def sample_key(seed: bytes, item: str) -> bytes:
    """The draw's key of `item` under `seed` (smallest keys are drawn)."""
    if len(seed) != hashing.HASH_SIZE:
        raise SamplingError(f"a seed is {hashing.HASH_SIZE} bytes")
    return hashing.domain_hash(SAMPLE_DOMAIN, seed + item.encode("ascii"))


def draw(seed: bytes, population: Iterable[str], size: int) -> list[str]:
    """The `size` items of `population` drawn under `seed`, sorted by id."""
    items = sorted(set(population))
    if not 0 <= size <= len(items):
        raise SamplingError(f"cannot draw {size} of {len(items)} items")
    return sorted(sorted(items, key=lambda item: sample_key(seed, item))[:size])


def list_hash(items: Iterable[str]) -> bytes:
    """A commitment to a set of ids: SHA-256 over "kitledger/v1/inventory-list" NUL and the
    sorted ids, each followed by a newline (ids are printable ASCII without spaces)."""
    return hashing.domain_hash("inventory-list",
                               b"".join(item.encode("ascii") + b"\n" for item in sorted(items)))


RECONCILED: Final = ("expected", "found", "missing", "unexpected", "unknown")
"""The lists an inventory reconciles, in the order `reconciliation_hash` takes them."""


def reconciliation_hash(lists: Mapping[str, Iterable[str]]) -> bytes:
    """A commitment to an inventory's five lists (`RECONCILED`: asset ids, and EPCs for the
    unknown tags): `list_hash` over each entry spelt "<list>:<entry>"."""
    return list_hash(f"{name}:{entry}" for name in RECONCILED for entry in lists[name])


@dataclass(frozen=True, slots=True)
class Interval:
    """The share present, low and high, in basis points."""

    low_bp: int
    high_bp: int


def share_interval(found: int, sample: int, population: int, confidence_bp: int) -> Interval:
    """The interval for the share of `population` present, `found` of `sample` having been
    read (a full count when `sample` == `population`, or when no confidence is asked)."""
    if not 0 <= found <= sample <= population:
        raise SamplingError(f"found {found} of a sample of {sample} from {population} items")
    if sample == 0:
        return Interval(0, BASIS_POINTS)  # nothing read: nothing known
    if sample == population or confidence_bp == 0:
        return Interval(found * BASIS_POINTS // sample, -(-found * BASIS_POINTS // sample))
    z2 = _z(confidence_bp) ** 2 * (population - sample) / (population - 1)
    share = found / sample
    centre = (share + z2 / (2 * sample)) / (1 + z2 / sample)
    half = (math.sqrt(z2) / (1 + z2 / sample)) * math.sqrt(
        share * (1 - share) / sample + z2 / (4 * sample * sample))
    return Interval(max(0, math.floor((centre - half) * BASIS_POINTS)),
                    min(BASIS_POINTS, math.ceil((centre + half) * BASIS_POINTS)))
