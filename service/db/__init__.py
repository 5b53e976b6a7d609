"""PostgreSQL: the transaction that applies a message with its idempotency record (store.py), sqs2pg's own rows
(records.py, quarantine.py, drill.py), retention (retention.py) and the schema's migrations (migrate.py)."""
