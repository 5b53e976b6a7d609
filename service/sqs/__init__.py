"""SQS: the counted client (client.py) with its lean hot path (lean.py), the dead-letter copy's shape
(deadletter.py) and the dead-letter queue tools (dlq.py)."""
