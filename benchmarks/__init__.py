"""Concord's benchmark: `make bench` (full) and `make bench-quick` (under a minute).

Measured in one run on this machine, beside the broker's own limit; printed as a table and
written to var/bench/results.json. Figures, never assertions: no test times anything.
"""
