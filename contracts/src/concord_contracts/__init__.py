"""Concord's contracts: the only vocabulary services share.

Everything that crosses the bus or an RPC boundary is defined here, once: the codes,
the event envelope, one closed schema per event and per RPC payload, and the topology.
"""

SCHEMA_VERSION = 1
