"""Benchmark suites, the runner, statistics and the results store."""
