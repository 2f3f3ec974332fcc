"""kitledger ledger: the record format, its cryptography and the chain client.

`ledger.core` is pure and format-critical; `ledger.chain` is the only module that imports web3.
"""
