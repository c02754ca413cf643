"""Evaluation sets, metrics and reports, benchmarks, synthetic libraries and the load check."""
