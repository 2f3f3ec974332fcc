"""Ingest: from signed MQTT messages to accepted observations, in batches, exactly once.

`verify` checks one message without touching the database (so it runs outside the write
transaction); `record` stores a verified batch idempotently with its gaps and sightings;
`pipeline` joins them into one transaction per batch; `worker` feeds it from MQTT and
acknowledges each message only after its batch has committed.
"""
