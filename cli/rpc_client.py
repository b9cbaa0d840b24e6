"""A small synchronous JSON-RPC 2.0 client (urllib, no extra dependencies) with errors a person can
act on: the node is unreachable, the node answered with an error, or the answer was not JSON-RPC."""

from __future__ import annotations

import itertools
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_RPC_URL = "http://127.0.0.1:26657"
ANSWER_BYTES_MAX = 64 << 20


class RpcClientError(Exception):
    """Base of every error the client raises."""


class NodeUnreachable(RpcClientError):
    pass


class RpcProtocolError(RpcClientError):
    """The answer was not a JSON-RPC response."""


class RpcCallError(RpcClientError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class RpcClient:
    def __init__(self, url: str = DEFAULT_RPC_URL, timeout_s: float = 15.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RpcClientError(f"the RPC address must start with http:// or https://, got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
        self._opener = urllib.request.build_opener(*handlers)
        self._ids = itertools.count(1)

    def call(self, method: str, timeout_s: float | None = None, **params: Any) -> Any:
        """Call `method` with named params (None values are left out); return its result."""
        request_id = next(self._ids)
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {k: v for k, v in params.items() if v is not None}}
        answer = self._post(json.dumps(request).encode(), timeout_s or self.timeout_s)
        if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0" or ("result" not in answer and "error" not in answer):
            raise RpcProtocolError(f"the node at {self.url} did not answer with JSON-RPC")
        if "error" in answer:
            error = answer["error"]
            if not isinstance(error, dict) or not isinstance(error.get("code"), int):
                raise RpcProtocolError(f"the node at {self.url} sent a malformed error")
            raise RpcCallError(error["code"], str(error.get("message", "")), error.get("data"))
        return answer["result"]

    def _post(self, body: bytes, timeout_s: float) -> Any:
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with self._opener.open(request, timeout=timeout_s) as response:
                data = response.read(ANSWER_BYTES_MAX)
        except urllib.error.HTTPError as exc:
            data = exc.read(ANSWER_BYTES_MAX)  # JSON-RPC errors may come with 4xx statuses
            if not data:
                raise RpcProtocolError(f"the node at {self.url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeUnreachable(f"cannot reach the node at {self.url}: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise NodeUnreachable(f"the node at {self.url} did not answer within {timeout_s:g} s") from None
        try:
            return json.loads(data)
        except ValueError:
            raise RpcProtocolError(f"the node at {self.url} did not answer with JSON") from None
