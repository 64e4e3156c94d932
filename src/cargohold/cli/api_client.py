"""A small synchronous client for the gateway's native API (``/api/v1``).

It knows URLs, headers and problem+json, and nothing of terminals: the
commands in ``client.py`` do all printing. Every failure leaves this module as
a :class:`ClientError` carrying a stable ``code`` and a human ``detail``:
:class:`ApiError` when the gateway answered with an error status,
:class:`TransportError` when no usable answer came back.

Bodies are streamed both ways in 1 MiB chunks; nothing holds a whole object.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from cargohold import __version__ as _version

CHUNK = 1 << 20
# Connecting is quick or hopeless; the gateway may pause a while between
# chunks (or before answering a PUT) while it encodes and waits on nodes.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# One pool is shared by the threads of a parallel put: keep a connection per worker.
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    416: "range_not_satisfiable",
    429: "too_many_requests",
    503: "unavailable",
}


class ClientError(Exception):
    """Something the user should be told as ``<code>: <detail>``."""

    def __init__(self, code: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


class ApiError(ClientError):
    """The gateway answered with an error status (usually problem+json)."""


class TransportError(ClientError):
    """No usable answer: refused, timed out, or the connection broke mid-way."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD (or the headers of a GET) says about an object."""

    size: int | None
    etag: str | None
    content_type: str | None
    last_modified: str | None
    version_id: str | None = None

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> ObjectInfo:
        length = headers.get("content-length")
        return cls(
            size=int(length) if length and length.isdigit() else None,
            etag=headers.get("etag"),
            content_type=headers.get("content-type"),
            last_modified=headers.get("last-modified"),
            version_id=headers.get("x-version-id"),
        )


def problem_from_response(response: httpx.Response, what: str = "") -> ApiError:
    """Turn an error response into an ApiError; the body must already be read.

    ``what`` names the thing asked for, for answers without a problem body (HEAD).
    """
    status = response.status_code
    code = _STATUS_CODES.get(status, f"http_{status}")
    detail = (response.reason_phrase or "error").lower()
    if what:
        detail = f"{what}: {detail}"
    data: Any = None
    if response.content:
        try:
            data = response.json()
        except ValueError:
            text = response.text.strip()
            if text:
                detail = f"{detail}: {text[:200]}"
    if isinstance(data, dict):
        code = str(data.get("code") or code)
        detail = str(data.get("detail") or data.get("title") or detail)
    return ApiError(code, detail, status)


def object_path(bucket: str, key: str, action: str = "objects") -> str:
    """The URL path of one object (or of ``action``, "rename" or "restore", on it).

    The key's '/' are kept and all else escaped. Segments that are exactly
    '.' or '..' are escaped too, otherwise URL normalisation would silently
    turn ``a/../b`` into ``b``.
    """
    segments = []
    for seg in key.split("/"):
        if seg in (".", ".."):
            segments.append(seg.replace(".", "%2E"))
        else:
            segments.append(quote(seg, safe=""))
    return f"{bucket_path(bucket)}/{action}/{'/'.join(segments)}"


def bucket_path(bucket: str) -> str:
    return f"/api/v1/buckets/{quote(bucket, safe='')}"


def upload_path(upload_id: str) -> str:
    return f"/api/v1/uploads/{quote(upload_id, safe='')}"


class Download:
    """An open GET: its headers are known, its body not yet read."""

    def __init__(self, response: httpx.Response, client: GatewayClient) -> None:
        self.response = response
        self.info = ObjectInfo.from_headers(response.headers)
        self._client = client

    @property
    def partial(self) -> bool:
        return self.response.status_code == 206

    def chunks(self) -> Iterator[bytes]:
        """The body in chunks of up to 1 MiB; a broken stream raises TransportError."""
        with self._client.translate_errors():
            yield from self.response.iter_bytes(chunk_size=CHUNK)


class GatewayClient:
    """The native API over one keep-alive connection pool.

    ``transport`` lets tests plug in ``httpx.MockTransport``. Proxy variables
    from the environment are ignored: the gateway is addressed directly.
    """

    def __init__(
        self,
        url: str,
        key: str | None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={
                "User-Agent": f"cargohold/{_version}",
                # None: public calls only (sign-in); no credential is sent at all.
                **({"Authorization": f"Bearer {key}"} if key else {}),
            },
            timeout=timeout,
            limits=DEFAULT_LIMITS,
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Map httpx's transport exceptions to TransportError with a clear message."""
        try:
            yield
        except httpx.ConnectError as exc:
            reason = _connect_reason(exc)
            raise TransportError(
                "unreachable", f"cannot connect to the gateway at {self.url}: {reason}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransportError(
                "timeout", f"the gateway at {self.url} did not answer in time ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                "connection_lost", f"connection to the gateway at {self.url} broke: {exc}"
            ) from exc

    def call(self, method: str, path: str, what: str = "", **kwargs: Any) -> httpx.Response:
        with self.translate_errors():
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise problem_from_response(response, what)
        return response

    def collect(
        self, path: str, key: str, params: dict[str, str], limit: int, *, cursor: str, page_max: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` items of a paged listing (``key`` of each page), following ``next_cursor``."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while len(items) < limit:
            query = {**params, "limit": str(min(page_max, limit - len(items)))}
            if after:
                query[cursor] = after
            page = self.request_json("GET", path, params=query)
            items += [item for item in page.get(key) or [] if isinstance(item, dict)]
            after = page.get("next_cursor")
            if not after:
                break
        return items[:limit]

    @contextlib.contextmanager
    def stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A GET whose body is read as it comes (server-sent events); error statuses raise ApiError."""
        with self.translate_errors(), self._http.stream("GET", path, **kwargs) as response:
            if response.is_error:
                response.read()
                raise problem_from_response(response)
            yield response

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError("bad_response", f"{method} {path}: the gateway sent invalid JSON", None) from exc

    # buckets

    def list_buckets(self) -> list[dict[str, Any]]:
        return list(self.request_json("GET", "/api/v1/buckets")["buckets"])

    def create_bucket(self, bucket: str, layout: str | None = None) -> dict[str, Any]:
        body = {"layout": layout} if layout else None
        return dict(self.request_json("PUT", bucket_path(bucket), json=body))

    def delete_bucket(self, bucket: str) -> None:
        self.call("DELETE", bucket_path(bucket))

    # objects

    def put_object(
        self,
        bucket: str,
        key: str,
        body: Iterable[bytes],
        *,
        size: int | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Stream ``body`` as the object's content.

        With ``size`` the request carries Content-Length; without it (a pipe)
        it is sent chunked.
        """
        headers = {}
        if size is not None:
            headers["Content-Length"] = str(size)
        if content_type:
            headers["Content-Type"] = content_type
        return dict(self.request_json("PUT", object_path(bucket, key), content=iter(body), headers=headers))

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        params = _version_params(version_id)
        try:
            response = self.call("HEAD", object_path(bucket, key), what=f"{bucket}/{key}", params=params)
        except ApiError as error:
            raise self._explain_head_error(bucket, key, error, params) from None
        return ObjectInfo.from_headers(response.headers)

    def _explain_head_error(
        self, bucket: str, key: str, error: ApiError, params: dict[str, str] | None = None
    ) -> ApiError:
        """A HEAD error has no body, so its stable code (``no_such_key``...) is lost.

        Ask again with a GET, whose problem+json body carries it. The body is
        read only when that answer is the same error: never the object itself.
        """
        request = self._http.build_request("GET", object_path(bucket, key), params=params)
        try:
            with self.translate_errors():
                response = self._http.send(request, stream=True)
            try:
                if response.status_code != error.status:
                    return error
                with self.translate_errors():
                    response.read()
                return problem_from_response(response, f"{bucket}/{key}")
            finally:
                response.close()
        except ClientError:
            return error

    @contextlib.contextmanager
    def open_object(
        self, bucket: str, key: str, byte_range: str | None = None, version_id: str | None = None
    ) -> Iterator[Download]:
        """GET an object (or one version); ``byte_range`` is a ``Range`` spec without ``bytes=``."""
        headers = {"Range": f"bytes={byte_range}"} if byte_range else {}
        request = self._http.build_request(
            "GET", object_path(bucket, key), headers=headers, params=_version_params(version_id)
        )
        with self.translate_errors():
            response = self._http.send(request, stream=True)
        try:
            if response.is_error:
                with self.translate_errors():
                    response.read()
                raise problem_from_response(response, f"{bucket}/{key}")
            yield Download(response, self)
        finally:
            response.close()

    @contextlib.contextmanager
    def open_stream(self, path: str, params: dict[str, str] | None = None) -> Iterator[Iterator[str]]:
        """GET a text/event-stream: its lines as they come (a broken stream raises TransportError)."""
        request = self._http.build_request("GET", path, params=params)
        with self.translate_errors():
            response = self._http.send(request, stream=True)
        try:
            if response.is_error:
                with self.translate_errors():
                    response.read()
                raise problem_from_response(response)

            def lines() -> Iterator[str]:
                with self.translate_errors():
                    yield from response.iter_lines()

            yield lines()
        finally:
            response.close()

    def delete_object(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any]:
        """Delete an object (or exactly one version): ``{version_id, delete_marker}`` of the change."""
        response = self.call("DELETE", object_path(bucket, key), params=_version_params(version_id))
        return {
            "version_id": response.headers.get("x-version-id"),
            "delete_marker": response.headers.get("x-delete-marker") == "true",
        }

    # versions and renames

    def rename_object(
        self, bucket: str, key: str, to_bucket: str, to_key: str, *, overwrite: bool = False
    ) -> dict[str, Any]:
        body = {"to_bucket": to_bucket, "to_key": to_key, "overwrite": overwrite}
        return dict(self.request_json("POST", object_path(bucket, key, "rename"), json=body))

    def restore_version(self, bucket: str, key: str, version_id: str) -> dict[str, Any]:
        path = object_path(bucket, key, "restore")
        return dict(self.request_json("POST", path, json={"version_id": version_id}))

    def list_versions(
        self, bucket: str, prefix: str = "", *, key: str | None = None, limit: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every page of a version listing (of one ``key``, or of all keys under ``prefix``)."""
        path = object_path(bucket, key) if key is not None else f"{bucket_path(bucket)}/objects"
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"versions": "", "limit": limit}
            if key is None:
                params["prefix"] = prefix
            if cursor:
                params["cursor"] = cursor
            page = self.request_json("GET", path, params=params)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return
            if cursor in seen:
                raise ApiError("bad_response", "the gateway repeated a listing cursor", None)
            seen.add(cursor)

    def get_versioning(self, bucket: str) -> str:
        return str(self.request_json("GET", f"{bucket_path(bucket)}/versioning")["status"])

    def set_versioning(self, bucket: str, status: str) -> str:
        reply = self.request_json("PUT", f"{bucket_path(bucket)}/versioning", json={"status": status})
        return str(reply["status"])

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str | None = "/", limit: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every page of a listing, following ``next_cursor`` until the end."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"prefix": prefix, "limit": limit}
            if delimiter:
                params["delimiter"] = delimiter
            if cursor:
                params["cursor"] = cursor
            page = self.request_json("GET", f"{bucket_path(bucket)}/objects", params=params)
            yield page
            cursor = page.get("next_cursor")
            if not cursor or not page.get("truncated", True):
                return
            if cursor in seen:
                raise ApiError("bad_response", "the gateway repeated a listing cursor", None)
            seen.add(cursor)

    # upload sessions

    def create_upload(
        self,
        bucket: str,
        key: str,
        *,
        size: int,
        content_type: str | None = None,
        part_size: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"bucket": bucket, "key": key, "size": size}
        if content_type:
            body["content_type"] = content_type
        if part_size:
            body["part_size"] = part_size
        return dict(self.request_json("POST", "/api/v1/uploads", json=body))

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        return dict(self.request_json("GET", upload_path(upload_id), what=f"upload {upload_id}"))

    def list_uploads(self, bucket: str | None = None) -> list[dict[str, Any]]:
        params = {"bucket": bucket} if bucket else None
        return list(self.request_json("GET", "/api/v1/uploads", params=params)["uploads"])

    def put_part(self, upload_id: str, number: int, body: Iterable[bytes], size: int) -> dict[str, Any]:
        """Stream part ``number`` (exactly ``size`` bytes); the answer holds its size and md5."""
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        path = f"{upload_path(upload_id)}/parts/{number}"
        return dict(self.request_json("PUT", path, content=iter(body), headers=headers))

    def complete_upload(
        self,
        upload_id: str,
        parts: list[dict[str, Any]],
        *,
        md5: str | None = None,
        sha256: str | None = None,
    ) -> dict[str, Any]:
        """Assemble the object from ``parts`` ({part_number, md5}, in order): {upload, object}."""
        body: dict[str, Any] = {"parts": parts}
        if md5:
            body["md5"] = md5
        if sha256:
            body["sha256"] = sha256
        return dict(self.request_json("POST", f"{upload_path(upload_id)}/complete", json=body))

    def abort_upload(self, upload_id: str) -> dict[str, Any]:
        return dict(self.request_json("DELETE", upload_path(upload_id), what=f"upload {upload_id}"))

    # nodes

    def list_nodes(self) -> list[dict[str, Any]]:
        return list(self.request_json("GET", "/api/v1/nodes")["nodes"])

    def add_node(self, url: str, zone: str | None = None) -> dict[str, Any]:
        body: dict[str, str] = {"url": url}
        if zone:
            body["zone"] = zone
        return dict(self.request_json("POST", "/api/v1/nodes", json=body))

    def update_node(self, node_id: str, **changes: Any) -> dict[str, Any]:
        """PATCH a node with only the fields given (enabled, active, zone)."""
        body = {k: v for k, v in changes.items() if v is not None}
        return dict(self.request_json("PATCH", f"/api/v1/nodes/{quote(node_id, safe='')}", json=body))


def _version_params(version_id: str | None) -> dict[str, str] | None:
    return {"version_id": version_id} if version_id else None


def _connect_reason(exc: httpx.ConnectError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return "connection refused (is it running? `cargohold up` starts one)"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused (is it running? `cargohold up` starts one)"
    return text or type(exc).__name__
