"""The format-critical core: canonical encoding, envelopes, hash chains, Merkle log and proofs.

Pure functions only: no I/O, no clock, no randomness. Outside facts (times, salts, roots read
from a chain) come in as arguments. Changing anything here can break existing signatures and
proofs: every change must change or add test vectors under tests/vectors/.
"""
