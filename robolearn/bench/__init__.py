"""Benchmarks that write JSON: robolearn bench env|policy|learner|loop."""
