"""sqs2pg's Alembic migrations (installed as ``sqs2pg.migrations``; run them with ``sqs2pg migrate``)."""
