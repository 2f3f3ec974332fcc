"""Alias of `ledger.merkle_log`, kept only while `api.logstore` and `api.ingest.pipeline` import
it by this name; delete it once they import `ledger.merkle_log`."""

from ledger.merkle_log import LogError, MerkleLog, Node, NodeConflict, NodeMissing

__all__ = ["LogError", "MerkleLog", "Node", "NodeConflict", "NodeMissing"]
