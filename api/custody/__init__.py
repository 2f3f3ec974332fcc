"""Custody: the rules (`rules`, pure), ruling on a batch of verified reads (`ruling`, with its
unit of work in `batch`: `facts` loaded once, `writes` flushed once, `holding` for reads that
wait for their badge), and appending each accepted change to the asset's hash chain and the
Merkle log (`events`) in the same transaction as the state change.

Custody is given verified reads and gives back answers as plain values (`reads`); it never
imports ingest, which verifies the reads and turns the answers into messages.
"""
