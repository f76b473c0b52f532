from concord_kit.migrations import run_env
from referral.models import metadata

run_env(metadata)
