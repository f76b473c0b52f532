"""A small JSON client of the gateway: the end-to-end and fault tests and the whole-system
benchmarks speak to it as any API user would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode


class Http:
    def __init__(self, base_url: str, password: str, timeout: float = 30):
        self.base_url = base_url
        self.password = password  # the seeded users' password
        self.timeout = timeout
        self._tokens: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        user: str | None = None,
    ) -> tuple[int, Any]:
        """The status and the parsed JSON answer (its text when it is not JSON). `token`
        or `user` (signed in once and kept, see `session`) says who asks."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if user:
            token = self.session(user)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
                return response.status, json.loads(payload) if payload else None
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, payload.decode(errors="replace")

    def every_item(self, path: str, token: str, limit: int = 100) -> list[Any]:
        """Every item of a keyset-paged list (`items`, `next_cursor`), page after page."""
        items: list[Any] = []
        query = {"limit": limit}
        while True:
            status, page = self.request("GET", f"{path}?{urlencode(query)}", token=token)
            assert status == 200, page
            items += page["items"]
            if not page["next_cursor"]:
                return items
            query = {"limit": limit, "cursor": page["next_cursor"]}

    def token(self, username: str, password: str | None = None) -> str:
        """A new access token for this user."""
        status, body = self.request(
            "POST",
            "/api/v1/auth/token",
            {"username": username, "password": password or self.password},
        )
        assert status == 200, body
        return body["access_token"]

    def session(self, username: str) -> str:
        """One token per user, kept: many requests, one sign-in (sign-ins are slow by design)."""
        if username not in self._tokens:
            self._tokens[username] = self.token(username)
        return self._tokens[username]
