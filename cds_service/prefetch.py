"""Prefetch resolution: the FHIR data of one CDS Hooks call, as a flat list of resources.

For every prefetch key of the service:
- a value the client sent is used as is; `null` means "the client has no such data";
- a key the client left out, or sent as an OperationOutcome (its own failed query), is
  read from the client's `fhirServer` with the template's tokens filled from the context,
  with the client's bearer token, when that server is one the service may contact. The
  caller decides that (`server_allowed`: the issuer's pinned bases, see
  `cds_service.auth.fhir_server_allowed`). A server that is not allowed is never
  contacted and never sees the token;
- Bundle `next` links are followed up to a cap, and only while they stay under the
  `fhirServer` base (`cds_service.auth.same_base`);
- `also_read` names single resources to read too (`Medication/<id>` of a draft order
  whose medication is a reference): read only when not already in the data, and a
  failure there is not a missing key (the caller decides what an unread one means);
- then every `Medication/<id>` that a MedicationRequest, MedicationStatement or
  MedicationDispense of the data refers to (relative, or absolute under the `fhirServer`
  base) and that is neither contained nor in the
  data is read by reference (at most `FetchLimits.max_medication_reads`, concurrently);
  one that cannot be read stays unresolved (`PrefetchResult.unread`): the mapping then
  reads its record as an unidentified medication, never as "no drug";
- all queries of one call share one deadline, one query budget, one byte budget
  (`FetchLimits.max_call_bytes`) and a small thread pool; at the deadline the reads still
  going are cut (their sockets shut down, see `CallScope`) and their threads end with the
  call; data read from the server counts as not read in time when the deadline has passed
  by the end of fetching (no time is left to evaluate it).

A required key that cannot be obtained is reported in `PrefetchResult.required_missing`
(the caller answers with a card saying what could not be read; see `cds_service.api`).
An optional one is reported in `PrefetchResult.missing` so that criteria depending on it
become `unknown`. `PrefetchResult.reasons` says why for both. A key whose template needs
context the hook did not give (no `encounterId`, a user who is not a PractitionerRole) has
nothing to fetch: it is neither data nor missing.

The HTTP client is injectable (`FhirClient`); `RequestsFhirClient` is the real one. No
diagnostic here carries a URL, a token or patient data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cds_service import fast_json
from cds_service.auth import same_base
from cds_service.cards.safe_text import without_lone_surrogates
from cds_service.hooks import TOKEN
from fhir_mappings.fields import compare_versions, reference

_FHIR_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")
USER_TOKEN_TYPES = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class FetchError(Exception):
    """A prefetch key could not be obtained. `code` is a FHIR issue type."""

    def __init__(self, code: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retry_after = retry_after
        """Seconds the server asked to wait before trying again (429 / 503 Retry-After)."""


class NotApplicableError(Exception):
    """The template needs context this call does not have; there is nothing to fetch."""


@dataclass(frozen=True)
class FetchLimits:
    """The FHIR read limits of one call, taken from the service's `Settings` (their
    defaults and meaning are documented there)."""

    connect_timeout: float
    read_timeout: float
    max_next_pages: int
    max_queries: int
    max_concurrent: int
    max_response_bytes: int
    max_medication_reads: int = 20
    """`Medication/<id>` reads by reference per call (beyond the draft orders' own)."""
    max_call_bytes: int = 10 * 1024 * 1024
    """Bytes read from the FHIR server for one call, all its answers together."""


class FhirClient(Protocol):
    def get(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float,
        max_bytes: int,
    ) -> Any:
        """GET `url` and return the parsed JSON body; raise `FetchError` otherwise.

        `deadline` is a `time.monotonic()` instant after which reading must stop."""
        ...

    def close(self) -> None: ...


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _standard_loads(data: bytes) -> Any:
    return json.loads(data, parse_constant=_reject_constant)


def parse_json(data: bytes) -> Any:
    """The FHIR server's answer, parsed. A lone surrogate escape in a string (`"\\ud800"`:
    valid JSON, but no character) becomes U+FFFD, so the resource is still read and its
    text can be encoded again (cards, audit)."""
    try:
        value = fast_json.loads(data, _standard_loads)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FetchError("structure", "the FHIR server's answer is not valid JSON") from exc
    return without_lone_surrogates(value) if _SURROGATE_ESCAPE.search(data) else value


log = logging.getLogger(__name__)
_TIMED_OUT = "the FHIR server did not answer in time"
TOO_MUCH = "the FHIR server's answers for this call are too large"


class CallScope:
    """The reads of one call: the bytes they took, and the sockets they are reading from.

    `cancel()` (at the call's deadline) shuts those sockets down, so that a read blocked
    on a server that drips bytes or stalls mid-answer fails at once and its thread ends
    with the call. The fetch threads of a call run inside its scope (`entered`); the
    connections of `pooled_adapter` register their socket with the current scope while a
    response is read."""

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._sockets: dict[int, socket.socket] = {}
        self.cancelled = False

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        _current.scope = self
        try:
            yield
        finally:
            with self._lock:
                self._sockets.pop(threading.get_ident(), None)
            _current.scope = None

    def reading(self, sock: socket.socket | None) -> None:
        """This thread now reads from `sock` (a socket shut down after a cancel)."""
        if sock is None:
            return
        with self._lock:
            if not self.cancelled:
                self._sockets[threading.get_ident()] = sock
                return
        _shut(sock)

    def done_reading(self) -> None:
        with self._lock:
            self._sockets.pop(threading.get_ident(), None)

    def charge(self, size: int) -> None:
        """Count `size` more bytes read; `FetchError` beyond the call's limit."""
        with self._lock:
            self._bytes += size
            if self._bytes > self._max_bytes:
                raise FetchError("too-costly", TOO_MUCH)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            sockets = list(self._sockets.values())
            self._sockets.clear()
        for sock in sockets:
            _shut(sock)


_current = threading.local()


def current_scope() -> CallScope | None:
    scope = getattr(_current, "scope", None)
    return scope if isinstance(scope, CallScope) else None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _ScopedHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:
        scope = current_scope()
        if scope is not None:
            scope.reading(self.sock)
        return super().getresponse()


class _ScopedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:
        scope = current_scope()
        if scope is not None:
            scope.reading(self.sock)
        return super().getresponse()


class _ScopedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _ScopedHTTPConnection


class _ScopedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _ScopedHTTPSConnection


class _ScopedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections can be cut by the reading call's `CallScope`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _ScopedHTTPPool,
            "https": _ScopedHTTPSPool,
        }


def pooled_adapter(pool_size: int) -> requests.adapters.HTTPAdapter:
    """Connections to FHIR servers, kept open and reused (keep-alive): at most `pool_size`
    idle ones per server. Thread-safe; one per worker process is enough. A call's
    `CallScope` can cut the connections it is reading from."""
    return _ScopedAdapter(pool_connections=16, pool_maxsize=pool_size, max_retries=0)


class RequestsFhirClient:
    """`FhirClient` over a `requests.Session`: timeouts on every call, no redirects
    (a redirect could carry the token elsewhere), a size cap, the deadline checked
    while reading.

    With `adapter` (see `pooled_adapter`) the connections come from a pool shared with
    other calls, and `close` leaves them open for the next call; the session itself (its
    cookies) still belongs to this client alone, so nothing one caller's FHIR server sets
    reaches another's."""

    def __init__(
        self,
        session: requests.Session | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        pool_size: int = 8,
        adapter: requests.adapters.HTTPAdapter | None = None,
    ) -> None:
        self._shared_pool = adapter is not None
        if session is None:
            session = requests.Session()
            if adapter is None:
                adapter = pooled_adapter(pool_size)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self.monotonic = monotonic

    def get(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float,
        max_bytes: int,
    ) -> Any:
        chunks: list[bytes] = []
        scope = current_scope()
        try:
            with self.session.get(
                url, headers=dict(headers), timeout=timeout, stream=True, allow_redirects=False
            ) as response:
                status = response.status_code
                if not 200 <= status < 300 or status == 204:
                    raise FetchError(
                        _status_code(status),
                        f"the FHIR server answered {status}",
                        _retry_after(status, response.headers.get("Retry-After")),
                    )
                size = 0
                for chunk in response.iter_content(chunk_size=65536):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError("too-costly", "the FHIR server's answer is too large")
                    if scope is not None:
                        scope.charge(len(chunk))
                    if self.monotonic() > deadline:
                        raise FetchError("timeout", _TIMED_OUT)
                    chunks.append(chunk)
        except requests.Timeout as exc:
            raise FetchError("timeout", _TIMED_OUT) from exc
        except requests.RequestException as exc:
            if scope is not None and scope.cancelled:
                raise FetchError("timeout", _TIMED_OUT) from exc
            raise FetchError("exception", "the FHIR server could not be read") from exc
        finally:
            if scope is not None:
                scope.done_reading()
        return parse_json(b"".join(chunks))

    def close(self) -> None:
        if not self._shared_pool:
            self.session.close()


def _retry_after(status: int, value: str | None) -> float | None:
    """The wait a busy server (429, 503) asks for, in seconds; an HTTP date is not used."""
    if status not in (429, 503) or value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _status_code(status: int) -> str:
    if status in (401, 403):
        return "security"
    if status in (404, 410):
        return "not-found"
    if 300 <= status < 400:
        return "not-supported"
    return "exception"


# --- pure helpers -------------------------------------------------------------------


def is_resource(value: Any) -> bool:
    return isinstance(value, dict | Mapping) and isinstance(value.get("resourceType"), str)


_NOT_PLAIN = frozenset({"Bundle", "OperationOutcome"})


def flatten(value: Any, _depth: int = 0) -> list[Mapping[str, Any]]:
    """Resources in a prefetch value: Bundles opened (their entries' `resource`),
    search-outcome entries and OperationOutcomes dropped. The resources themselves are
    not copied."""
    if not is_resource(value) or _depth > 4:
        return []
    kind = value["resourceType"]
    if kind == "OperationOutcome":
        return []
    if kind != "Bundle":
        return [value]
    resources: list[Mapping[str, Any]] = []
    entries = value.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        search = entry.get("search")
        if isinstance(search, Mapping) and search.get("mode") == "outcome":
            continue
        resource = entry.get("resource")
        if _depth < 4 and isinstance(resource, dict):  # the common case, no call per entry
            inner = resource.get("resourceType")
            if isinstance(inner, str) and inner not in _NOT_PLAIN:
                resources.append(resource)
                continue
        resources.extend(flatten(resource, _depth + 1))
    return resources


def next_link(bundle: Any) -> str | None:
    if not is_resource(bundle) or bundle["resourceType"] != "Bundle":
        return None
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


def deduplicate(resources: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One copy of every `resourceType/id` (or of every identical body, when a resource has
    no id), at the place of its first occurrence. Of several copies of the same id the
    newest is kept (`compare_versions`: meta.versionId, then meta.lastUpdated; on a tie the
    first), so a stale prefetch copy never hides the page the server just returned."""
    where: dict[str, int] = {}
    unique: list[Mapping[str, Any]] = []
    for resource in resources:
        rid = resource.get("id")
        if isinstance(rid, str) and rid:
            key = f"{resource['resourceType']}/{rid}"
        else:
            key = json.dumps(resource, sort_keys=True, default=str)
        at = where.get(key)
        if at is None:
            where[key] = len(unique)
            unique.append(resource)
        elif compare_versions(resource, unique[at]) > 0:
            unique[at] = resource
    return unique


def _token_value(token: str, context: Mapping[str, Any]) -> str:
    if token.startswith("context."):
        value = context.get(token.removeprefix("context."))
        if value is None:
            raise NotApplicableError(token)
        if not isinstance(value, str):
            raise FetchError("invalid", f"context value for {{{{{token}}}}} is not a string")
        return value
    wanted = USER_TOKEN_TYPES.get(token)
    user = context.get("userId")
    if wanted is None or not isinstance(user, str) or "/" not in user:
        raise NotApplicableError(token)
    kind, _, ident = user.partition("/")
    if kind != wanted:
        raise NotApplicableError(token)
    return ident


def fill_template(template: str, context: Mapping[str, Any]) -> str:
    """The query with every token replaced (ids checked and percent-encoded).

    Raises `NotApplicableError` when the context lacks what a token needs, `FetchError`
    when a context value cannot be a FHIR id."""

    def replace(match: Any) -> str:
        name = match.group(1)
        value = _token_value(name, context)
        if name == "context.userId":
            kind, _, ident = value.partition("/")
            if not kind.isalpha() or not ident or not set(ident) <= _FHIR_ID_CHARS:
                raise FetchError("invalid", "context.userId is not a FHIR reference")
            return f"{kind}/{quote(ident, safe='')}"
        if not value or len(value) > 64 or not set(value) <= _FHIR_ID_CHARS:
            raise FetchError("invalid", f"the value for {{{{{name}}}}} is not a FHIR id")
        return quote(value, safe="")

    return TOKEN.sub(replace, template)


def join_url(base: str, query: str) -> str:
    return base.rstrip("/") + "/" + query.lstrip("/")


# --- resolution ---------------------------------------------------------------------


@dataclass(frozen=True)
class PrefetchResult:
    resources: tuple[Mapping[str, Any], ...]
    """Every resource, de-duplicated, in prefetch-key order."""
    missing: tuple[str, ...]
    """Optional keys whose data could not be obtained (or only in part)."""
    fetched: tuple[str, ...] = ()
    """Keys read (wholly or in part) from the FHIR server."""
    queries: int = 0
    """HTTP requests made to the FHIR server."""
    failures: Mapping[str, str] = field(default_factory=dict)
    """Key -> FHIR issue code, for every key in `missing` and `required_missing`."""
    unread: tuple[str, ...] = ()
    """`Medication/<id>` references (of `also_read` and of the medication records) that
    are neither in the data nor could be read."""
    required_missing: tuple[str, ...] = ()
    """Required keys whose data could not be obtained: the chart cannot be read."""
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Key -> plain reason (no URL, token or patient data), for every failed key."""


@dataclass
class _Task:
    key: str
    initial: list[Mapping[str, Any]]
    url: str | None
    """The first URL to GET (a filled template, or a next link of sent data)."""
    pages_used: int = 0


class _Budget:
    def __init__(self, limit: int) -> None:
        self._left = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self._left <= 0:
                raise FetchError("too-costly", "the per-call query limit was reached")
            self._left -= 1
            self._used += 1

    @property
    def used(self) -> int:
        with self._lock:
            return self._used


_READ_REF = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")
EXTRA_PREFIX = "#"
"""Task keys of `also_read` references start with this (prefetch keys cannot)."""


def _failed_outcome(entry: Mapping[str, Any]) -> bool:
    """An OperationOutcome entry of a search Bundle with an `error` or `fatal` issue: the
    server says the search did not run to the end (Epic and Cerner put such outcomes beside
    the results). `warning` and `information` issues ("no results", "some data hidden by
    the patient's consent") leave the answer whole."""
    resource = entry.get("resource")
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "OperationOutcome":
        return False
    issues = resource.get("issue")
    return any(
        isinstance(issue, Mapping) and issue.get("severity") in {"error", "fatal"}
        for issue in (issues if isinstance(issues, list) else [])
    )


def _total(bundle: Mapping[str, Any]) -> int | None:
    total = bundle.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


INCOMPLETE_SEARCH = "the FHIR server's search reported an error or fewer results than it found"


@dataclass
class _Page:
    """One search Bundle read in a single pass over its entries."""

    resources: list[Mapping[str, Any]]
    """As `flatten` gives them."""
    carried: int
    """Entries that are not search outcomes (Bundle.total counts matches only)."""
    failed: bool
    """An OperationOutcome entry with an `error` or `fatal` issue: the server says the
    search did not run to the end (Epic and Cerner put such outcomes beside the results)."""


def _read_page(bundle: Mapping[str, Any]) -> _Page:
    """The resources of a search Bundle, how many entries it carries, and whether the server
    reported an error in it: one pass (a chart's Bundles hold thousands of entries)."""
    entries = bundle.get("entry")
    page = _Page([], 0, False)
    kept = page.resources
    carried = 0
    for entry in entries if isinstance(entries, list) else []:
        if type(entry) is dict:
            # The common case first: a plain entry of a resource that is neither a Bundle
            # nor an OperationOutcome, not a search outcome.
            resource = entry.get("resource")
            if type(resource) is dict:
                search = entry.get("search")
                kind = resource.get("resourceType")
                matched = search is None or (
                    type(search) is dict and search.get("mode") != "outcome"
                )
                if matched and type(kind) is str and kind not in _NOT_PLAIN:
                    carried += 1
                    kept.append(resource)
                    continue
        elif not isinstance(entry, Mapping):
            continue
        search = entry.get("search")
        outcome = isinstance(search, Mapping) and search.get("mode") == "outcome"
        if not outcome:
            carried += 1
        resource = entry.get("resource")
        kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if kind == "OperationOutcome" and _failed_outcome(entry):
            page.carried = carried
            page.failed = True
            return page
        if outcome:
            continue
        if type(resource) is dict and isinstance(kind, str) and kind not in _NOT_PLAIN:
            kept.append(resource)
        else:
            kept.extend(flatten(resource, 1))
    page.carried = carried
    return page


def _read_sent(value: Any) -> tuple[list[Mapping[str, Any]], str | None] | None:
    """(the resources, the `next` link) of a prefetch value that can be used as sent; None
    for an OperationOutcome or an incomplete Bundle: one with an error outcome, or, with no
    `next` link to the rest, a Bundle.total above what it carries (some servers count
    their include entries in it too, so only a total above every non-outcome entry shows
    that data is missing). Either way the key is fetched again, or counted as missing."""
    if not is_resource(value) or value["resourceType"] == "OperationOutcome":
        return None
    if value["resourceType"] != "Bundle":
        return flatten(value), None
    page = _read_page(value)
    if page.failed:
        return None
    more = next_link(value)
    if more is None:
        total = _total(value)
        if total is not None and total > page.carried:
            return None
    return page.resources, more


def _plan(
    templates: Mapping[str, str], request: Mapping[str, Any], also_read: Sequence[str] = ()
) -> tuple[dict[str, list[Mapping[str, Any]]], list[_Task], dict[str, FetchError]]:
    """Split the keys into data already here, queries to run, and early failures."""
    sent = request.get("prefetch")
    sent = sent if isinstance(sent, Mapping) else {}
    context = request.get("context")
    context = context if isinstance(context, Mapping) else {}
    ready: dict[str, list[Mapping[str, Any]]] = {}
    tasks: list[_Task] = []
    failed: dict[str, FetchError] = {}
    for key, template in templates.items():
        if key in sent:
            value = sent[key]
            if value is None:
                ready[key] = []
                continue
            read = _read_sent(value)
            if read is not None:
                resources, more = read
                if more is None:
                    ready[key] = resources
                else:
                    tasks.append(_Task(key, resources, more, pages_used=1))
                continue
        try:
            query = fill_template(template, context)
        except NotApplicableError:
            ready[key] = []
            continue
        except FetchError as failure:
            failed[key] = failure
            continue
        tasks.append(_Task(key, [], query))
    if not also_read:
        return ready, tasks, failed
    present = {
        f"{r['resourceType']}/{r.get('id')}" for values in ready.values() for r in values
    } | {f"{r['resourceType']}/{r.get('id')}" for task in tasks for r in task.initial}
    server = request.get("fhirServer")
    base = server if isinstance(server, str) and server else None
    targets = (medication_target(ref, base) for ref in also_read)
    for ref in dict.fromkeys(ref for ref in targets if ref is not None):
        if ref not in present:
            tasks.append(_Task(EXTRA_PREFIX + ref, [], ref))
    return ready, tasks, failed


def unanswered_keys(templates: Mapping[str, str], request: Mapping[str, Any]) -> frozenset[str]:
    """Prefetch keys a request leaves to be fetched (not sent, an OperationOutcome, an
    incomplete Bundle, more pages), for evaluating a saved request without any FHIR server:
    their data is unavailable, not empty."""
    _, tasks, failed = _plan(templates, request)
    return frozenset(task.key for task in tasks) | frozenset(failed)


def resolve_prefetch(
    templates: Mapping[str, str],
    required: frozenset[str],
    request: Mapping[str, Any],
    *,
    server_allowed: Callable[[str], bool],
    client_factory: Callable[[], FhirClient],
    limits: FetchLimits,
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
    also_read: Sequence[str] = (),
) -> PrefetchResult:
    """Resolve the prefetch of one call (see the module docstring). Never raises for data
    that cannot be had: `required_missing`, `missing` and `unread` say what is missing.

    `server_allowed(fhir_server)` says whether the request's `fhirServer` may be
    contacted at all; `deadline` is a `monotonic()` instant; `client_factory` is called
    only when something must be fetched from an allowed server.
    """
    ready, tasks, failed = _plan(templates, request, also_read)
    results: dict[str, list[Mapping[str, Any]]] = dict(ready)
    budget = _Budget(limits.max_queries)
    scope = CallScope(limits.max_call_bytes)
    fhir_server = request.get("fhirServer")
    base = fhir_server if isinstance(fhir_server, str) and fhir_server else None
    allowed = base is not None and server_allowed(base)
    headers = {"Accept": "application/fhir+json, application/json"}
    auth = request.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, Mapping) else None
    if isinstance(token, str) and token:
        headers["Authorization"] = f"Bearer {token}"
    fetched: list[str] = []

    def run(batch: Sequence[_Task]) -> None:
        assert base is not None
        outcome = _run_tasks(
            batch, base, headers, client_factory, limits, deadline, monotonic, budget, scope
        )
        for key, value in outcome.items():
            fetched.append(key)
            if isinstance(value, FetchError):
                failed[key] = value
            else:
                results[key] = value

    if tasks:
        if base is None:
            sent = request.get("prefetch")
            sent = sent if isinstance(sent, Mapping) else {}
            for task in tasks:
                value = sent.get(task.key)
                partial = isinstance(value, Mapping) and value.get("resourceType") == "Bundle"
                failed[task.key] = FetchError("not-found", INCOMPLETE if partial else NO_SERVER)
        elif not allowed:
            for task in tasks:
                failed[task.key] = FetchError("forbidden", SERVER_NOT_ALLOWED)
        else:
            run(tasks)

    context = request.get("context")
    patient = context.get("patientId") if isinstance(context, Mapping) else None
    if isinstance(patient, str) and patient:
        own = patient if patient.startswith("Patient/") else f"Patient/{patient}"
        for key, values in list(results.items()):
            if key in templates and _PATIENT_SEARCH in templates[key]:
                results[key] = kept_to_patient(values, templates[key].split("?", 1)[0], own)
    for key, values in list(results.items()):
        if (
            key in templates
            and templates[key].startswith("Patient/")
            and any(replaced(r) for r in values)
        ):
            failed[key] = FetchError("not-found", REPLACED)
            del results[key]

    # Medications the records refer to and nobody sent: read them by reference.
    tried = {key.removeprefix(EXTRA_PREFIX) for key in (*results, *failed)}
    wanted = [
        ref
        for ref in medication_references((r for values in results.values() for r in values), base)
        if ref not in tried
    ]
    not_tried: list[str] = []
    if wanted:
        present = {
            f"{r['resourceType']}/{r.get('id')}" for values in results.values() for r in values
        }
        wanted = [ref for ref in wanted if ref not in present]
        in_time = allowed and monotonic() < deadline
        batch = wanted[: limits.max_medication_reads] if in_time else []
        if batch:
            run([_Task(EXTRA_PREFIX + ref, [], ref) for ref in batch])
        not_tried = wanted[len(batch) :]

    if fetched and monotonic() >= deadline:
        # The call's time is spent: what was read cannot be evaluated within it either.
        for key in fetched:
            if key in results:
                del results[key]
                failed[key] = FetchError("timeout", _TIMED_OUT)

    extra_resources: list[Mapping[str, Any]] = []
    unread: list[str] = []
    for key in [k for k in results if k.startswith(EXTRA_PREFIX)]:
        extra_resources.extend(results.pop(key))
    for key in [k for k in failed if k.startswith(EXTRA_PREFIX)]:
        failed.pop(key)
        unread.append(key.removeprefix(EXTRA_PREFIX))
    unread.extend(not_tried)
    fetched = [key for key in fetched if not key.startswith(EXTRA_PREFIX)]

    ordered: list[Mapping[str, Any]] = []
    for key in templates:
        ordered.extend(results.get(key, []))
    ordered.extend(extra_resources)
    missing = tuple(key for key in templates if key in failed and key not in required)
    required_missing = tuple(key for key in templates if key in failed and key in required)
    return PrefetchResult(
        resources=tuple(deduplicate(ordered)),
        missing=missing,
        fetched=tuple(key for key in templates if key in fetched),
        queries=budget.used,
        failures={key: failed[key].code for key in (*required_missing, *missing)},
        unread=tuple(unread),
        required_missing=required_missing,
        reasons={key: failed[key].reason for key in (*required_missing, *missing)},
    )


_PATIENT_SEARCH = "patient={{context.patientId}}"
_PATIENT_FIELDS = ("subject", "patient", "beneficiary")


def kept_to_patient(
    resources: Sequence[Mapping[str, Any]], searched: str, patient_ref: str
) -> list[Mapping[str, Any]]:
    """The answer to a search by patient, as far as it is this patient's. A record naming
    no patient counts as the patient's only while the answer keeps to the patient: when it
    holds records of the searched type naming other patients, the server ignored the
    patient filter, and a record naming nobody may be anyone's (an organisation's care
    team with a rheumatologist on it), so it is left out. Included records of other types
    (Medications, Practitioners) stay."""

    def named(resource: Mapping[str, Any]) -> str | None:
        for key in _PATIENT_FIELDS:
            target = reference(resource.get(key))
            if target is not None:
                return target
        return None

    # A subject that is exactly `patient_ref` reads as `patient_ref` (the common case).
    exact = reference({"reference": patient_ref}) == patient_ref

    def elsewhere(resource: Mapping[str, Any]) -> bool:
        """The record names a patient other than `patient_ref`."""
        if exact:
            subject = resource.get("subject")
            if type(subject) is dict and subject.get("reference") == patient_ref:
                return False
        return (named(resource) or patient_ref) != patient_ref

    if not any(elsewhere(r) for r in resources if r.get("resourceType") == searched):
        return list(resources)
    return [r for r in resources if r.get("resourceType") != searched or named(r) == patient_ref]


REPLACED = (
    "the patient record is marked as replaced by another (merged): the chart under it may "
    "not be whole; check the order from the patient's current record"
)


def replaced(resource: Mapping[str, Any]) -> bool:
    """A Patient whose `link` says it is replaced by another record (a merge): FHIR says
    it must no longer be used; its history may have moved to the surviving record."""
    if resource.get("resourceType") != "Patient":
        return False
    links = resource.get("link")
    return any(
        isinstance(link, Mapping) and link.get("type") == "replaced-by"
        for link in (links if isinstance(links, list) else [])
    )


NO_SERVER = "not sent with the call, and the EHR gave no FHIR server to read it from"
INCOMPLETE = (
    "sent incomplete with the call (the EHR's search reported an error, or fewer results "
    "than it found), and the EHR gave no FHIR server to read the rest from"
)
SERVER_NOT_ALLOWED = (
    "not sent with the call, and the EHR's FHIR server is not one this service may read"
)
_MEDICATION_HOLDERS = frozenset(
    {"MedicationRequest", "MedicationStatement", "MedicationDispense", "MedicationAdministration"}
)


def medication_target(target: str, base: str | None = None) -> str | None:
    """The `Medication/<id>` to read for a `medicationReference.reference`: a relative one
    as it is (a `_history/<version>` suffix dropped: the current version names the same
    drug), an absolute one only when it lies under `base`, the FHIR server being read (EHRs
    such as Cerner write full URLs). A reference to another server, a contained (`#id`) or
    conditional one is never read."""
    target = target.strip()
    if target.startswith(("http://", "https://")):
        if base is None or not same_base(target, base):
            return None
        parts = urlsplit(target)
        if parts.query:
            return None
        target = parts.path[len(urlsplit(base).path.rstrip("/")) :].lstrip("/")
    kind, _, rest = target.partition("/")
    ident, _, history = rest.partition("/_history/")
    if history and not history.isalnum():
        return None
    target = f"{kind}/{ident}"
    return target if kind == "Medication" and _READ_REF.match(target) else None


def medication_references(
    resources: Iterable[Mapping[str, Any]], base: str | None = None
) -> list[str]:
    """`Medication/<id>` targets of the `medicationReference` of MedicationRequests,
    MedicationStatements, MedicationDispenses and MedicationAdministrations, in order, once
    each (see `medication_target`)."""
    refs: dict[str, None] = {}
    for resource in resources:
        if resource.get("resourceType") not in _MEDICATION_HOLDERS:
            continue
        reference = resource.get("medicationReference")
        target = reference.get("reference") if isinstance(reference, Mapping) else None
        found = medication_target(target, base) if isinstance(target, str) else None
        if found is not None:
            refs[found] = None
    return list(refs)


def _run_tasks(
    tasks: Sequence[_Task],
    base: str,
    headers: Mapping[str, str],
    client_factory: Callable[[], FhirClient],
    limits: FetchLimits,
    deadline: float,
    monotonic: Callable[[], float],
    budget: _Budget,
    scope: CallScope | None = None,
) -> dict[str, list[Mapping[str, Any]] | FetchError]:
    """Run `tasks` on a small thread pool until they end or the deadline comes. At the
    deadline the reads still going are cut (`CallScope.cancel`) and their threads are
    waited for (at most `ABANDON_GRACE_SECONDS`): no fetch thread outlives its call."""
    scope = scope or CallScope(limits.max_call_bytes)
    client = client_factory()
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(limits.max_concurrent, len(tasks))),
        thread_name_prefix="prefetch",
    )
    futures: dict[Future[list[Mapping[str, Any]]], str] = {}
    outcome: dict[str, list[Mapping[str, Any]] | FetchError] = {}
    try:
        for task in tasks:
            future = pool.submit(
                _scoped_task,
                scope,
                task,
                base,
                headers,
                client,
                limits,
                deadline,
                monotonic,
                budget,
            )
            futures[future] = task.key
        _wait_all(futures, deadline, monotonic)
        for future, key in futures.items():
            if not future.done():
                outcome[key] = FetchError("timeout", _TIMED_OUT)
                continue
            error = future.exception()
            if error is None:
                outcome[key] = future.result()
            elif isinstance(error, FetchError):
                outcome[key] = error
            else:
                outcome[key] = FetchError("exception", "the FHIR data could not be read")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if not all(future.done() for future in futures):
            scope.cancel()
            # (a cancelled future that never started is done, but `wait` would not see it)
            running = [future for future in futures if not future.cancelled()]
            wait(running, timeout=ABANDON_GRACE_SECONDS)
        left = sum(1 for future in futures if not future.done())
        if left:
            log.warning(
                "FHIR reads still running after the call's deadline",
                extra={"event": "fetch-threads-left", "threads": left},
            )
        else:
            pool.shutdown(wait=True)  # its idle threads end now, not some time after the call
            client.close()
    return outcome


ABANDON_GRACE_SECONDS = 1.0
"""How long a call waits, after cutting its reads at the deadline, for their threads."""


def _scoped_task(scope: CallScope, *args: Any) -> list[Mapping[str, Any]]:
    with scope.entered():
        if scope.cancelled:
            raise FetchError("timeout", _TIMED_OUT)
        return _run_task(*args)


def _wait_all(
    futures: Mapping[Future[Any], str], deadline: float, monotonic: Callable[[], float]
) -> None:
    wait(list(futures), timeout=max(0.0, deadline - monotonic()))


def _too_many_pages(limits: FetchLimits) -> FetchError:
    return FetchError("too-costly", f"more than {limits.max_next_pages} further pages of results")


def _run_task(
    task: _Task,
    base: str,
    headers: Mapping[str, str],
    client: FhirClient,
    limits: FetchLimits,
    deadline: float,
    monotonic: Callable[[], float],
    budget: _Budget,
) -> list[Mapping[str, Any]]:
    """Read one key: its first URL, then next links (each page counts against the cap)."""
    resources = list(task.initial)
    pages = task.pages_used
    if pages > limits.max_next_pages:
        raise _too_many_pages(limits)
    url = task.url
    first = pages == 0
    carried = len(task.initial)
    largest: int | None = None
    while url is not None:
        # A next link should be absolute; some servers write it relative to their base.
        target = join_url(base, url) if first else urljoin(base.rstrip("/") + "/", url)
        if not first and not same_base(target, base):
            raise FetchError("processing", "a next link leaves the FHIR server's base URL")
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise FetchError("timeout", "the FHIR server did not answer in time")
        body = _get(target, headers, client, limits, deadline, monotonic, budget)
        if not is_resource(body):
            raise FetchError("structure", "the FHIR server's answer is not a FHIR resource")
        if body["resourceType"] == "OperationOutcome":
            raise FetchError("processing", "the FHIR server answered with an OperationOutcome")
        if body["resourceType"] != "Bundle" and (not first or "?" in url):
            # One resource is no search result: nothing says it is the whole list.
            raise FetchError("structure", "the FHIR server answered a search without a Bundle")
        if body["resourceType"] == "Bundle":
            # Read as the whole list only when the server does not say otherwise: an error
            # outcome on any page, or a total above what all the pages carried.
            page = _read_page(body)
            if page.failed:
                raise FetchError("incomplete", INCOMPLETE_SEARCH)
            carried += page.carried
            total = _total(body)
            if total is not None:
                largest = max(largest or 0, total)
            resources.extend(page.resources)
        else:
            resources.extend(flatten(body))
        url = next_link(body)
        if url is not None and pages >= limits.max_next_pages:
            raise _too_many_pages(limits)
        pages += 1
        first = False
    if largest is not None and largest > carried:
        raise FetchError("incomplete", INCOMPLETE_SEARCH)
    return resources


def _get(
    url: str,
    headers: Mapping[str, str],
    client: FhirClient,
    limits: FetchLimits,
    deadline: float,
    monotonic: Callable[[], float],
    budget: _Budget,
) -> Any:
    """One GET; asked to wait by a busy server (429 / 503 with Retry-After), tried once
    more when the wait is under half the time left before the deadline."""
    retried = False
    while True:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise FetchError("timeout", "the FHIR server did not answer in time")
        budget.take()
        timeout = (min(limits.connect_timeout, remaining), min(limits.read_timeout, remaining))
        try:
            return client.get(url, headers, timeout, deadline, limits.max_response_bytes)
        except FetchError as error:
            wait = error.retry_after
            if retried or wait is None or wait >= (deadline - monotonic()) / 2:
                raise
            retried = True
            time.sleep(wait)
