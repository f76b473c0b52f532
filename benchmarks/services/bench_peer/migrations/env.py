from bench_peer.models import metadata

from concord_kit.migrations import run_env

run_env(metadata)
