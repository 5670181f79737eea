"""The nine stage agents; each file holds one agent with one ``_execute``."""
