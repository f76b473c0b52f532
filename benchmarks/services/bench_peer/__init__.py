"""A benchmark service (benchmarks/pipeline.py); not part of Concord."""
