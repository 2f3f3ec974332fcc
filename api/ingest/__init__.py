"""Ingest: from signed MQTT messages to accepted observations, in batches, exactly once.

`checks` checks one message without touching the database (so it runs outside the write
transaction, and in `verifier_pool`'s child processes); `pipeline` tells one batch's story in
one transaction, through the batch's unit of work (`batch`: `record` for observations and
sightings, `sequence` for gaps, the custody rules' part from `api.custody`); `answers` turns
the rules' answers into decision rows and messages, which `publishing` sends. `worker` feeds
the pipeline from MQTT (`transport`, `batching`, `scans`) and acknowledges each message only
after its batch has committed.
"""
