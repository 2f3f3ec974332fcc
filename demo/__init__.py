"""The demo: `kitledger up` runs the whole system on one machine with a scripted day of kit
being scanned. `up` is the command, `stack` its child processes, `seed` the demo registry,
`feed` the decisions it prints, and `scenarios/` the readers' scripted days (package data, so
an installed wheel runs the demo as a checkout does). Needs the `server` extra.
"""
