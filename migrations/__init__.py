"""Schema history of the job store, as alembic migrations; each file says what it changes and why."""
