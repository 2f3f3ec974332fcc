"""Subcommands of the `kitledger` command, one module each (registered in `ledger.cli`)."""
