"""The chain client: the only package in kitledger that imports web3.

It deploys and drives the `CustodyAnchor` contract (artifacts compiled from `contracts/` and
committed under `artifacts/`), keeps a pending-anchor store so a restart never loses or doubles an
anchor, and runs the anchorer loop that puts signed log checkpoints on chain.
"""
