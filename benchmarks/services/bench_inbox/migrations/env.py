from bench_inbox.models import metadata

from concord_kit.migrations import run_env

run_env(metadata)
