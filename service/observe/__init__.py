"""What an operator sees: Prometheus metrics (metrics.py), JSON log lines (logs.py) and the HTTP port that serves
/metrics, /healthz, /readyz and /writes (http.py)."""
