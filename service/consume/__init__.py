"""The runtime, in the order data flows: poll (poller.py) -> dispatch by group (dispatcher.py) -> handle in a
transaction (worker.py, with db/store.py) -> settle (settle.py: policy.py decides, deletes.py batches). app.py
wires them together and writes the shutdown order down once."""
