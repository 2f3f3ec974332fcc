"""The `/v1` REST routes, one module per concern; thin: checks, one registry call, a model."""
