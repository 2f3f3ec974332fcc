"""kitledger reader agent: serial drivers, read pipeline, signing, durable outbox and MQTT.

Runs on a Raspberry Pi beside a UHF reader. Imports neither `api` nor `ledger.chain` (web3), so
the Pi installs only the `agent` extra.
"""
