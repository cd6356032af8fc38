"""The engine: scheduling (readiness, completion), executing task bodies, recovery."""
