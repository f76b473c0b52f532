from concord_kit.migrations import run_env
from justice_liaison.models import metadata

run_env(metadata)
