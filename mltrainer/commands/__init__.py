"""CLI commands, one small module per group."""
