"""A C2SP tlog-witness for kitledger logs: `kitledger witness serve` and `keygen`.

Run by another agency or an inspectorate, so it needs nothing beyond the core install (the
standard library's HTTP server and SQLite, and `cryptography`). Modules: `keys` (the witness's
private key file and the logs' verifier keys), `state` (the last cosigned checkpoint per log,
durable, updated by compare-and-swap), `service` (the add-checkpoint rules: which requests are
cosigned and why others are refused), `server` (the HTTP front: bounded bodies, deadlines),
`commands` (the subcommands).
"""
