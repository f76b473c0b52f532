from concord_kit.migrations import run_env
from cross_border.models import metadata

run_env(metadata)
