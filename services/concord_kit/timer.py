"""A timer entrypoint whose interval is a setting (deploy/config.yaml), read at start.

    class ReferralService(ConcordService):
        @every("SLA_CHECK_SECONDS", default=30)
        def check_clocks(self): ...

nameko's own `@timer(interval=...)` fixes the interval when the class is defined, before
the configuration is loaded; this one reads it when the container sets the service up, so
a deployment (or a test system) can run the same clock faster or slower.
"""

from __future__ import annotations

from nameko.timer import Timer

from concord_kit.config import setting


class ConfiguredTimer(Timer):
    def __init__(self, setting_key: str, default: float, eager: bool = False, **kwargs):
        self.setting_key = setting_key
        self.default = default
        super().__init__(interval=default, eager=eager, **kwargs)

    def setup(self) -> None:
        interval = float(setting(self.setting_key, self.default))
        if interval <= 0:
            raise RuntimeError(f"{self.setting_key} must be a positive number of seconds")
        self.interval = interval


every = ConfiguredTimer.decorator
