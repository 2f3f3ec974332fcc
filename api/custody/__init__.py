"""Custody: the rules (`rules`, pure), applying them to a batch (`apply`), and appending each
accepted change to the asset's hash chain and the Merkle log (`events`) in the same
transaction as the state change.
"""
