"""NATS: line-protocol metrics into the built-in store, and upstream's NATS job API (``internal/api/nats.go``).

* ``metric-store.nats-subscriptions[{subscribe-to, cluster-tag}]``: every message is a line-protocol
  body for :meth:`MetricStore.write_lines` (``cluster-tag`` names the cluster of lines without one).
* ``main.api-subjects``: on ``subject-job-event`` the messages ``job,function=start_job event="<Job JSON>"
  <ts>`` and ``job,function=stop_job event="<StopJob JSON>" <ts>``; on ``subject-node-state`` the message
  ``nodestate event="<UpdateNodeStates JSON>" <ts>``. They go through the same core functions as the REST
  API (:func:`cc_backend.jobs.store.start_job`, :func:`~cc_backend.jobs.store.stop_job`,
  :func:`cc_backend.nodes.update_node_states`) with the same validation; a stopped job is then handed to
  the runtime's archiver. As upstream there is no reply: errors are logged, and a NATS publisher is not
  authenticated beyond the connection's own credentials.

nats-py is asyncio-based: :class:`NatsService` runs its event loop in one background thread. Database
work runs in thread pools sized by ``job-concurrency`` and ``node-concurrency`` (upstream's worker pools),
so a slow database does not hold up the metric subscriptions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from cc_backend.errors import CCError, InvalidInput

if TYPE_CHECKING:
    from cc_backend.runtime import Runtime

log = logging.getLogger("cc_backend.nats")

#: Seconds between connection attempts while the NATS server cannot be reached.
RECONNECT_WAIT_S = 2
#: How long a graceful stop waits for the subscriptions to drain and the pools to finish.
STOP_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------------------------------
# Line protocol with string fields (job events); metric lines are the store's own parser
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineEvent:
    """One line-protocol line: measurement, tags, fields (str, float, int or bool) and the raw timestamp."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    timestamp: int | None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """The lines of a body, split at newlines outside quoted field values; (line number, text)."""
    lines: list[tuple[int, str]] = []
    start, number, first_number = 0, 1, 1
    in_quotes = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == "\n":
            if not in_quotes:
                lines.append((first_number, text[start:i]))
                start, first_number = i + 1, number + 1
            number += 1
    lines.append((first_number, text[start:]))
    return [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]


def _split(text: str, sep: str, *, quotes: bool) -> list[str]:
    """``text`` split at ``sep`` outside escapes (and, with ``quotes``, outside double quotes)."""
    parts, start = [], 0
    in_quotes = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quotes and ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes:
            parts.append(text[start:i])
            start = i + 1
    if in_quotes:
        raise ValueError("a quoted field value is not closed")
    parts.append(text[start:])
    return parts


def _unescape_key(text: str) -> str:
    out, escaped = [], False
    for ch in text:
        if escaped:
            if ch not in ",= \\":
                out.append("\\")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    if escaped:
        out.append("\\")
    return "".join(out)


def _field_value(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        # Inside a string field only \" and \\ are escapes; any other backslash is literal.
        body, out, i = raw[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\':
                out.append(body[i + 1])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    if raw[-1:] in ("i", "u"):
        return int(raw[:-1])
    return float(raw)


def parse_event_lines(data: bytes) -> list[LineEvent]:
    """Every line of a line-protocol message with string fields; InvalidInput naming the line otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the message is not UTF-8: {exc}", field="message") from None
    events = []
    for number, line in _logical_lines(text):
        where = f"line {number}"
        try:
            sections = [s for s in _split(line.strip(), " ", quotes=True) if s != ""]
            if len(sections) not in (2, 3):
                raise ValueError("expected 'measurement[,tags] fields [timestamp]'")
            key = _split(sections[0], ",", quotes=False)
            measurement = _unescape_key(key[0])
            if not measurement:
                raise ValueError("the measurement is empty")
            tags = {}
            for tag in key[1:]:
                name, sep, value = tag.partition("=")
                if not sep or not name:
                    raise ValueError(f"tag {tag!r} is not key=value")
                tags[_unescape_key(name)] = _unescape_key(value)
            fields = {}
            for item in _split(sections[1], ",", quotes=True):
                name, sep, value = item.partition("=")
                if not sep or not name or not value:
                    raise ValueError(f"field {item[:40]!r} is not key=value")
                fields[_unescape_key(name)] = _field_value(value)
            timestamp = int(sections[2]) if len(sections) == 3 else None
        except ValueError as exc:
            raise InvalidInput(f"{where}: {exc}", field=where) from None
        events.append(LineEvent(measurement, tags, fields, timestamp))
    return events


# --------------------------------------------------------------------------------------------------
# The job API: the same core functions as REST
# --------------------------------------------------------------------------------------------------


def _event_payload(event: LineEvent, what: str) -> Any:
    raw = event.fields.get("event")
    if not isinstance(raw, str) or not raw:
        raise InvalidInput(f"{what}: the string field 'event' with the JSON payload is missing", field="event")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what}: the event is not valid JSON: {exc}", field="event") from None


def handle_job_event(runtime: Runtime, event: LineEvent) -> dict[str, Any] | None:
    """Start or stop the job of one ``job,function=...`` event; returns the job (errors raise CCError)."""
    from cc_backend.jobs.store import start_job, stop_job

    function = event.tags.get("function")
    if function == "start_job":
        payload = _event_payload(event, "start_job")
        if not isinstance(payload, dict):
            raise InvalidInput("start_job: the event must be a JSON object", field="event")
        job = start_job(runtime.engine, runtime.archive.registry(), payload)
        runtime.taggers.on_job_started(job)
        log.info("NATS: new job (id: %s): cluster=%s, jobId=%s, user=%s, startTime=%s", job.get("id"),
                 job.get("cluster"), job.get("jobId"), job.get("user"), job.get("startTime"))
        return job
    if function == "stop_job":
        payload = _event_payload(event, "stop_job")
        if not isinstance(payload, dict):
            raise InvalidInput("stop_job: the event must be a JSON object", field="event")
        job = stop_job(runtime.engine, payload)
        log.info("NATS: stopped job (id: %s): cluster=%s, jobId=%s, state=%s, duration=%s", job.get("id"),
                 job.get("cluster"), job.get("jobId"), job.get("jobState"), job.get("duration"))
        archiver = runtime.archiver
        if archiver is not None:
            archiver.submit(job)
        return job
    raise InvalidInput(f"unknown job event function {function!r}; expected start_job or stop_job", field="function")


def handle_node_state_event(runtime: Runtime, event: LineEvent) -> int:
    """Record the node states of one ``nodestate event="..."`` line; returns the number of rows."""
    from cc_backend.nodes import update_node_states

    payload = _event_payload(event, "nodestate")
    return update_node_states(runtime.engine, runtime.archive.registry(), payload,
                              health=lambda cluster, hosts, metrics: runtime.metric_data.health(cluster, hosts, metrics))


def _run_logged(subject: str, what: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
    except CCError as exc:
        log.error("NATS %s: %s refused: %s", subject, what, exc.message)
    except Exception:
        log.exception("NATS %s: %s failed", subject, what)


def _dispatch(subject: str, data: bytes, measurement: str, submit: Callable[[Callable[[], Any]], Any],
              work: Callable[[Any], tuple[str, Callable[[], Any]]]) -> None:
    """Parse a line-protocol message and hand each event of ``measurement`` to ``submit`` as ``work(event)``."""
    if not data:
        log.warning("NATS %s: received an empty message", subject)
        return
    try:
        events = parse_event_lines(data)
    except InvalidInput as exc:
        log.error("NATS %s: cannot decode the line-protocol message: %s", subject, exc.message)
        return
    for event in events:
        if event.measurement != measurement:
            log.warning("NATS %s: measurement %r skipped, expected %r", subject, event.measurement, measurement)
            continue
        what, call = work(event)
        submit(functools.partial(_run_logged, subject, what, call))


def dispatch_job_message(runtime: Runtime, subject: str, data: bytes, submit: Callable[[Callable[[], Any]], Any]) -> None:
    """Parse a job-event message and hand each ``job`` event to ``submit`` (a worker pool)."""
    _dispatch(subject, data, "job", submit, lambda event: (
        f"job event {event.tags.get('function')!r}", functools.partial(handle_job_event, runtime, event)))


def dispatch_node_state_message(runtime: Runtime, subject: str, data: bytes,
                                submit: Callable[[Callable[[], Any]], Any]) -> None:
    """Parse a node-state message and hand each ``nodestate`` event to ``submit``."""
    _dispatch(subject, data, "nodestate", submit, lambda event: (
        "node state update", functools.partial(handle_node_state_event, runtime, event)))


def ingest_metrics(runtime: Runtime, subject: str, data: bytes, cluster_tag: str | None) -> int:
    """Write one metric message into the store; a malformed message is logged, never raised."""
    try:
        return runtime.metric_store.write_lines(data, cluster_tag)
    except CCError as exc:
        log.warning("NATS %s: metric message refused: %s", subject, exc.message)
    except Exception:
        log.exception("NATS %s: writing a metric message failed", subject)
    return 0


# --------------------------------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------------------------------


def connect_options(runtime: Runtime) -> dict[str, Any]:
    """nats-py ``connect`` keyword arguments from the ``nats`` section."""
    nats_config = runtime.config.nats
    if nats_config is None:
        raise InvalidInput("the nats section is not configured", field="nats")
    options: dict[str, Any] = {"servers": [nats_config.address], "name": "cc-backend",
                               "max_reconnect_attempts": -1, "reconnect_time_wait": RECONNECT_WAIT_S}
    if nats_config.creds_file_path:
        options["user_credentials"] = nats_config.creds_file_path
    elif nats_config.username:
        options["user"] = nats_config.username
        options["password"] = nats_config.password or ""
    return options


def wanted(runtime: Runtime) -> bool:
    """Whether this configuration subscribes to anything (metric subjects or the job API)."""
    config = runtime.config
    subscriptions = config.metric_store.nats_subscriptions if config.metric_store is not None else []
    return bool(subscriptions) or config.main.api_subjects is not None


#: Events of the job API queued for a pool's workers, at most. Beyond it the subscription's callback waits:
#: the NATS client buffers the messages (up to its own pending limits, then it drops them and reports a slow
#: consumer) instead of this process's memory growing with every event of a flood.
MAX_QUEUED_EVENTS = 10_000


class _EventPool:
    """A thread pool that counts the events waiting for a worker, so that a flood can be held back."""

    def __init__(self, workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self.queued = 0
        #: The most events queued at once since start (tests and logs read it).
        self.most_queued = 0

    def submit(self, work: Callable[[], Any]) -> None:
        with self._lock:
            self.queued += 1
            self.most_queued = max(self.most_queued, self.queued)
        self._executor.submit(work).add_done_callback(self._done)

    def _done(self, _future: Any) -> None:
        with self._lock:
            self.queued -= 1

    async def room(self) -> None:
        """Return when fewer than MAX_QUEUED_EVENTS wait (one message's events may go beyond it)."""
        while self.queued >= MAX_QUEUED_EVENTS:
            await asyncio.sleep(0.005)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)


class NatsService:
    """The server's NATS client: connects (retrying until it can), subscribes, and drains on stop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        subjects = runtime.config.main.api_subjects
        self.job_pool = _EventPool(subjects.job_concurrency if subjects else 1, "nats-job")
        self.node_pool = _EventPool(subjects.node_concurrency if subjects else 1, "nats-node")
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._run_task: asyncio.Task[Any] | None = None
        self._connected = threading.Event()
        self._errors = 0
        self._closing = False
        #: Messages received per kind (metrics, job, nodestate), for tests and logs.
        self.received = {"metrics": 0, "job": 0, "nodestate": 0}

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until the subscriptions are in place; False on timeout."""
        return self._connected.wait(timeout)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the NATS service was already started")
        if self.runtime.config.metric_store is not None and self.runtime.config.metric_store.nats_subscriptions:
            self.runtime.metric_store  # noqa: B018 - created here, not raced for by the loop and request threads
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        future.add_done_callback(self._connect_done)

    @staticmethod
    def _connect_done(future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("NATS: connecting or subscribing failed: %s", future.exception())

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Drain the subscriptions, let queued job and node events finish, and end the thread."""
        if self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout)
        except Exception as exc:  # noqa: BLE001 - a stuck connection must not hold up the shutdown
            log.warning("NATS: closing the connection failed: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self.job_pool.shutdown()
        self.node_pool.shutdown()
        self._thread = None
        log.info("NATS: stopped (%s)", ", ".join(f"{k} {v}" for k, v in self.received.items()))

    async def _run(self) -> None:
        import nats

        self._run_task = asyncio.current_task()
        options = connect_options(self.runtime)
        # nats-py retries the first connection by itself (max_reconnect_attempts -1): the server runs on
        # without NATS until it can connect, and stop() cancels the attempts.
        self._client = await nats.connect(**options, error_cb=self._on_error, disconnected_cb=self._on_disconnected,
                                          reconnected_cb=self._on_reconnected)
        await self._subscribe(self._client)
        self._connected.set()
        log.info("NATS: connected to %s", options["servers"][0])

    async def _subscribe(self, client: Any) -> None:
        config = self.runtime.config
        runtime = self.runtime
        if config.metric_store is not None:
            for sub in config.metric_store.nats_subscriptions:
                await client.subscribe(sub.subscribe_to, cb=self._metric_handler(sub.subscribe_to, sub.cluster_tag))
                log.info("NATS: metrics from %r (cluster tag %r)", sub.subscribe_to, sub.cluster_tag)
        subjects = config.main.api_subjects
        if subjects is not None:
            async def on_job(msg: Any) -> None:
                self.received["job"] += 1
                await self.job_pool.room()
                dispatch_job_message(runtime, msg.subject, msg.data, self.job_pool.submit)

            async def on_node_state(msg: Any) -> None:
                self.received["nodestate"] += 1
                await self.node_pool.room()
                dispatch_node_state_message(runtime, msg.subject, msg.data, self.node_pool.submit)

            await client.subscribe(subjects.subject_job_event, cb=on_job)
            await client.subscribe(subjects.subject_node_state, cb=on_node_state)
            log.warning("NATS: the job API listens on %r and %r; publishers are not authenticated beyond the "
                        "NATS connection", subjects.subject_job_event, subjects.subject_node_state)
        await client.flush()

    def _metric_handler(self, subject: str, cluster_tag: str | None) -> Callable[[Any], Any]:
        runtime = self.runtime

        async def on_metrics(msg: Any) -> None:
            self.received["metrics"] += 1
            # In the loop's thread, in arrival order: parsing is CPU work that a pool would only serialise.
            ingest_metrics(runtime, subject, msg.data, cluster_tag)

        return on_metrics

    async def _close(self) -> None:
        self._closing = True
        task = self._run_task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001, S110 - cancelled, or failed and logged by the caller
                pass
        client = self._client
        if client is not None and not client.is_closed:
            try:
                await client.drain()
            except Exception as exc:  # noqa: BLE001
                log.warning("NATS: draining failed: %s", exc)
                await client.close()

    async def _on_error(self, exc: Exception) -> None:
        self._errors += 1
        if self._errors == 1 or self._errors % 30 == 0:  # an unreachable server fails every RECONNECT_WAIT_S
            log.error("NATS: %s (%d errors so far)", exc or type(exc).__name__, self._errors)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS: disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS: reconnected")


def event_line(measurement: str, tags: dict[str, str], payload: Any, ts: int) -> bytes:
    """One event message as the NATS API expects it (``job,function=start_job event="<JSON>" <ts>``)."""
    body = orjson.dumps(payload).decode().replace("\\", "\\\\").replace('"', '\\"')
    key = ",".join([measurement, *(f"{k}={v}" for k, v in tags.items())])
    return f'{key} event="{body}" {ts}'.encode()
