"""Planning shared pools from recorded history: demand, a simulated store, sizing and replay.

Read-only: every analysis reads what the caller's agency may see and writes nothing to the
custody log (`docs/planning.md`).
"""
