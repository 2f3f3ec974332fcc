"""kitledger package."""
