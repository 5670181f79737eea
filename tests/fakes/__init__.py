"""Test doubles for the outside world: fake HTTP servers and scripted clients, no network needed."""
