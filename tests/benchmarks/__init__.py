"""Tests of `benchmarks`, mirroring its modules."""
