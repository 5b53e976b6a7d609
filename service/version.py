"""The version of sqs2pg (pyproject.toml reads it from here)."""

__version__ = "0.4.0"
