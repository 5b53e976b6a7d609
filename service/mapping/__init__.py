"""The declarative mapping (SQS2PG_MAPPING, issue 25): which tables a message writes, with no handler code.

spec.py reads the file, pointer.py resolves JSON Pointers into a body, convert.py makes JSON values into what a
column takes. Not wired into `run` yet."""
