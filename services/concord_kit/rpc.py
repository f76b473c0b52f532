"""Calling another service, always with a timeout.

nameko's RPC waits for ever for a reply; a stuck service would stall every caller behind
it. `ServiceCall` is nameko's `ServiceRpc` with a deadline: past it the caller gets
`ServiceUnavailable` and the late reply is dropped.
"""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.exceptions import UnknownService
from nameko.rpc import ServiceRpc

from concord_kit.config import rpc_timeout
from concord_kit.errors import ServiceUnavailable


class PendingCall:
    def __init__(self, rpc_call, service: str, method: str, timeout: float):
        self._call = rpc_call
        self._where = f"{service}.{method}"
        self._timeout = timeout

    def result(self) -> Any:
        try:
            with eventlet.Timeout(self._timeout):
                return self._call.result()
        except eventlet.Timeout:
            raise ServiceUnavailable(
                f"{self._where} did not answer in {self._timeout:g} s"
            ) from None


class TimedClient:
    def __init__(self, client, service: str, timeout: float):
        self._client = client
        self._service = service
        self._timeout = timeout

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            return self.call_async(method, *args, **kwargs).result()

        return call

    def call_async(self, method: str, *args, **kwargs) -> PendingCall:
        try:
            rpc_call = self._client[method].call_async(*args, **kwargs)
        except UnknownService:
            raise ServiceUnavailable(f"{self._service} is not running") from None
        return PendingCall(rpc_call, self._service, method, self._timeout)


class ServiceCall(ServiceRpc):
    """`self.referral.pull_details(cid)`, or `self.referral.call_async("health")`."""

    def __init__(self, target_service: str, timeout: float | None = None, **kwargs):
        self.timeout = timeout
        super().__init__(target_service, **kwargs)

    def get_dependency(self, worker_ctx) -> TimedClient:
        client = super().get_dependency(worker_ctx)
        return TimedClient(client, self.target_service, self.timeout or rpc_timeout())
