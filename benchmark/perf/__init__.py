"""Performance measurements: the training-throughput benchmark and what it needs (durations, FLOPs, cost)."""
