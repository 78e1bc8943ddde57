"""The taggers of one runtime: hooks at job start and after archiving, runs over existing jobs, their status.

Upstream's ``internal/tagger`` has two taggers with fixed names, which ``/config/taggers/`` lists:

- ``AppTagger`` (``start``): applications detected in the job script become ``app:<name>`` tags.
- ``JobClassTagger`` (``stop``): job-class rules over the archived statistics become ``jobClass:<tag>``
  tags, and their hints the job's ``metaData.message``.

The hooks run only with ``main.enable-job-taggers``; runs on demand (``cc-backend tags apply``,
``--apply-tags``, ``POST /config/taggers/run/``) always work. Rule files are read from ``./var/tagger``
(upstream's layout) and re-read when one changes: application files from the shipped set plus
``var/tagger/apps`` (a site file replaces the shipped one of the same name), job classes from
``var/tagger/jobclasses`` when that directory holds rules, else the shipped ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from cc_backend.db.tables import job_table
from cc_backend.errors import Busy, CCError, Conflict, InvalidInput, shown_value
from cc_backend.jobs.model import MONITORING_ARCHIVED
from cc_backend.taggers.apps import SHIPPED_DIR as SHIPPED_APPS
from cc_backend.taggers.apps import TAG_TYPE as APP_TAG_TYPE
from cc_backend.taggers.apps import AppDetector, job_script
from cc_backend.taggers.jobclasses import SHIPPED_RULES, JobClassifier

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cc_backend.archive.fs import FileArchive
    from cc_backend.jobs.filter import JobFilter

log = logging.getLogger(__name__)

J = job_table.c

APP_TAGGER = "AppTagger"
JOB_CLASS_TAGGER = "JobClassTagger"
JOB_CLASS_TAG_TYPE = "jobClass"
#: Upstream's names and hook kinds, in the order /config/taggers/ lists them.
TAGGER_KINDS = {APP_TAGGER: "start", JOB_CLASS_TAGGER: "stop"}

SITE_APPS = Path("var/tagger/apps")
SITE_JOB_CLASSES = Path("var/tagger/jobclasses")
#: Jobs read from the database per batch of a run (bounded memory on 100,000s of jobs).
RUN_BATCH = 2000
#: Hooks look at the rule files' modification times at most this often (seconds): a job start stays cheap.
RELOAD_CHECK_SECONDS = 2.0


@dataclass
class RunSummary:
    """What one run over jobs did."""

    tagger: str
    jobs: int = 0
    tagged: int = 0
    skipped: int = 0
    failed: int = 0
    tags: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tagger": self.tagger, "jobs": self.jobs, "tagged": self.tagged, "skipped": self.skipped,
                "failed": self.failed, "tags": dict(sorted(self.tags.items())), "seconds": round(self.seconds, 3)}


def _stamp(paths: Iterable[Path]) -> tuple[tuple[str, float], ...]:
    out: list[tuple[str, float]] = []
    for directory in paths:
        if directory.is_dir():
            out.extend((str(p), p.stat().st_mtime) for p in directory.glob("*.*") if p.suffix in (".txt", ".json"))
    return tuple(sorted(out))


def job_class_dir(site: Path = SITE_JOB_CLASSES) -> Path:
    """The site's rule directory when it holds rule files, else the shipped rules."""
    if site.is_dir() and any(p.name != "parameters.json" for p in site.glob("*.json")):
        return site
    return SHIPPED_RULES


class JobTaggers:
    """Both taggers over one engine and archive; thread-safe (hooks run in request and archiver threads)."""

    def __init__(self, engine: Callable[[], Engine], archive: Callable[[], FileArchive], *, enabled: bool,
                 app_dirs: Sequence[Path] = (SHIPPED_APPS, SITE_APPS), job_class_site: Path = SITE_JOB_CLASSES,
                 reload_check_seconds: float = RELOAD_CHECK_SECONDS) -> None:
        self._engine = engine
        self._archive = archive
        self.enabled = enabled
        self.app_dirs = tuple(Path(d) for d in app_dirs)
        self.job_class_site = Path(job_class_site)
        self.reload_check_seconds = reload_check_seconds
        self._lock = threading.Lock()
        self._detector: AppDetector | None = None
        self._detector_stamp: tuple[tuple[str, float], ...] | None = None
        self._classifier: JobClassifier | None = None
        self._checked = {APP_TAGGER: -1e9, JOB_CLASS_TAGGER: -1e9}
        self._running: dict[str, threading.Thread] = {}
        self.last_runs: dict[str, dict[str, Any]] = {}

    # -- rules, reloaded when their files change -------------------------------------------------------

    def _due(self, name: str, force: bool) -> bool:
        now = time.monotonic()
        if force or now - self._checked[name] >= self.reload_check_seconds:
            self._checked[name] = now
            return True
        return False

    def app_detector(self, *, force_check: bool = False) -> AppDetector:
        """The application patterns, re-read when a pattern file was added, changed or removed."""
        with self._lock:
            if self._detector is None or self._due(APP_TAGGER, force_check):
                stamp = _stamp(self.app_dirs)
                if self._detector is None or stamp != self._detector_stamp:
                    self._detector = AppDetector.load(*self.app_dirs)
                    self._detector_stamp = stamp
                    for message in self._detector.errors:
                        log.warning("application pattern skipped: %s", message)
            return self._detector

    @staticmethod
    def prepare() -> None:
        """Load the rule parser (lark, its grammar and the standard modules it imports) now: the server
        calls this before it drops privileges (main.user), after which a Python installed in a private
        directory can no longer be read and a first import in a request would fail."""
        from cc_backend.taggers.rules import compile_expr

        compile_expr("true")

    def job_classes(self, *, force_check: bool = False) -> JobClassifier:
        """The job-class rules, re-read when a rule file changed (or the site directory appeared)."""
        with self._lock:
            directory = job_class_dir(self.job_class_site)
            if self._classifier is None or self._classifier.directory != directory:
                self._classifier = JobClassifier(directory)
                self._checked[JOB_CLASS_TAGGER] = time.monotonic()
            elif self._due(JOB_CLASS_TAGGER, force_check):
                self._classifier.reload_if_changed()
            return self._classifier

    # -- hooks -------------------------------------------------------------------------------------------

    def on_job_started(self, job: Mapping[str, Any]) -> list[str]:
        """AppTagger's start hook; never raises (a job start must not fail over a tag). Returns the apps tagged."""
        if not self.enabled:
            return []
        try:
            return self.tag_applications(job)
        except Exception:  # noqa: BLE001 - logged; the job has started regardless
            log.exception("AppTagger failed on job %s", job.get("id"))
            return []

    def on_job_archived(self, db_id: int) -> list[str]:
        """JobClassTagger's stop hook (after archiving); never raises. Returns the classes tagged."""
        if not self.enabled:
            return []
        try:
            return self.classify_job(db_id)
        except Exception:  # noqa: BLE001 - a broken rule or file never breaks a job stop
            log.exception("JobClassTagger failed on job %s", db_id)
            return []

    # -- one job -----------------------------------------------------------------------------------------

    def tag_applications(self, job: Mapping[str, Any]) -> list[str]:
        """Attach ``app:<name>`` for each application in the job's script that it lacks; returns those."""
        change = app_change(job, self.app_detector())
        if change is not None:
            write_changes(self._engine(), self._archive(), [change])
            return change.tags
        return []

    def classify_job(self, db_id: int) -> list[str]:
        """Classify one archived job from its meta.json statistics; attach its classes and set its message."""
        from cc_backend.jobs.query import get_job

        archive = self._archive()
        change = class_change(get_job(self._engine(), db_id), self.job_classes(), archive)
        if change is not None:
            write_changes(self._engine(), archive, [change])
            return change.tags
        return []

    # -- runs over existing jobs -------------------------------------------------------------------------

    def run(self, name: str, filters: Sequence[JobFilter] = (), *, job_ids: Sequence[int] | None = None,
            progress: Callable[[int], None] | None = None) -> RunSummary:
        """Run one tagger over the jobs matching ``filters`` (and among ``job_ids`` when given; default every job).

        The jobs are read in batches; a batch's changes are written in one transaction (one commit per
        batch instead of one per job). ``progress`` is called with the number of jobs of each batch done.
        """
        from cc_backend.jobs.model import row_to_job

        if name not in TAGGER_KINDS:
            raise InvalidInput(f"unknown tagger {shown_value(name)}; expected one of {', '.join(TAGGER_KINDS)}", field="name")
        summary = RunSummary(name)
        started = time.perf_counter()
        archive = self._archive()
        detector = self.app_detector(force_check=True) if name == APP_TAGGER else None
        classifier = self.job_classes(force_check=True) if name == JOB_CLASS_TAGGER else None
        for batch in self._batches(self._condition(filters, job_ids)):
            tags = self._tags_of(batch)
            changes = []
            for row in batch:
                summary.jobs += 1
                job = row_to_job(row._mapping, tags.get(row.id, []))
                try:
                    if detector is not None:
                        change = app_change(job, detector)
                    elif job["monitoringStatus"] != MONITORING_ARCHIVED:
                        summary.skipped += 1
                        continue
                    else:
                        assert classifier is not None
                        change = class_change(job, classifier, archive)
                except CCError as exc:
                    summary.failed += 1
                    log.warning("%s on job %s: %s", name, row.id, exc.message)
                    continue
                if change is not None:
                    changes.append(change)
            summary.failed += self._write_batch(name, changes)
            for change in changes:
                if change.tags and not change.failed:
                    summary.tagged += 1
                    for tag in change.tags:
                        summary.tags[tag] = summary.tags.get(tag, 0) + 1
            if progress is not None:
                progress(len(batch))
        summary.seconds = time.perf_counter() - started
        self.last_runs[name] = summary.to_dict()
        log.info("%s over %d jobs: %d tagged, %d skipped, %d failed in %.1f s", name, summary.jobs, summary.tagged,
                 summary.skipped, summary.failed, summary.seconds)
        return summary

    def _write_batch(self, name: str, changes: list[JobChange]) -> int:
        """Write a batch's changes in one transaction; when that fails, job by job. Returns the jobs that failed."""
        if not changes:
            return 0
        try:
            write_changes(self._engine(), self._archive(), changes)
            return 0
        except CCError:
            pass  # one job's change was refused (e.g. a tag name clashing with another scope): find it
        failed = 0
        for change in changes:
            try:
                write_changes(self._engine(), self._archive(), [change])
            except CCError as exc:
                change.failed = True
                failed += 1
                log.warning("%s on job %s: %s", name, change.job["id"], exc.message)
        return failed

    def count(self, filters: Sequence[JobFilter] = (), *, job_ids: Sequence[int] | None = None) -> int:
        """How many jobs a run with these arguments goes over."""
        from sqlalchemy import func

        stmt = select(func.count()).select_from(job_table)
        condition = self._condition(filters, job_ids)
        if condition is not None:
            stmt = stmt.where(condition)
        with self._engine().connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    @staticmethod
    def _condition(filters: Sequence[JobFilter], job_ids: Sequence[int] | None) -> Any:
        from sqlalchemy import and_

        from cc_backend.jobs.query import where_clause

        parts: list[Any] = []
        if filters:
            parts.append(where_clause(filters, None))
        if job_ids is not None:
            parts.append(J.id.in_(sorted(set(job_ids))))
        parts = [p for p in parts if p is not None]
        return and_(*parts) if parts else None

    def _batches(self, condition: Any) -> Iterable[list[Any]]:
        engine = self._engine()
        last = 0
        while True:  # keyset pages: no cursor stays open while the batch's jobs are written
            stmt = select(job_table).where(J.id > last)
            if condition is not None:
                stmt = stmt.where(condition)
            with engine.connect() as conn:
                rows = list(conn.execute(stmt.order_by(J.id).limit(RUN_BATCH)))
            if not rows:
                return
            last = rows[-1].id
            yield rows

    def _tags_of(self, rows: Sequence[Any]) -> dict[int, list[dict[str, Any]]]:
        from cc_backend.jobs.query import tags_for_jobs

        with self._engine().connect() as conn:
            return tags_for_jobs(conn, [r.id for r in rows], None)

    # -- runs in the background (POST /config/taggers/run/) -------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Upstream's ``GET /config/taggers/`` list."""
        with self._lock:
            running = {name for name, thread in self._running.items() if thread.is_alive()}
        return [{"name": name, "type": kind, "running": name in running} for name, kind in TAGGER_KINDS.items()]

    def start_run(self, name: Any) -> threading.Thread:
        """Start a run over every job in a thread; InvalidInput for an unknown name, Busy (409) while one runs."""
        if not isinstance(name, str) or not name:
            raise InvalidInput("name is required: AppTagger or JobClassTagger", field="name")
        if name not in TAGGER_KINDS:
            raise InvalidInput(f"unknown tagger {shown_value(name)}; expected one of {', '.join(TAGGER_KINDS)}", field="name")
        with self._lock:
            thread = self._running.get(name)
            if thread is not None and thread.is_alive():
                raise Busy(f"tagger {name} is already running", field="name")
            thread = threading.Thread(target=self._run_logged, args=(name,), name=f"tagger-{name}", daemon=True)
            self._running[name] = thread
            thread.start()
        return thread

    def _run_logged(self, name: str) -> None:
        try:
            self.run(name)
        except Exception:  # noqa: BLE001 - a background run has no caller to raise to
            log.exception("tagger %s failed", name)


@dataclass
class JobChange:
    """Tags to attach to one job (type ``tag_type``), and its new ``metaData.message`` (None: unchanged)."""

    job: Mapping[str, Any]
    tag_type: str
    tags: list[str]
    message: str | None = None
    failed: bool = False


def app_change(job: Mapping[str, Any], detector: AppDetector) -> JobChange | None:
    """The ``app:`` tags the job's script calls for that the job lacks, or None."""
    have = {t["name"] for t in job.get("tags") or () if t.get("type") == APP_TAG_TYPE}
    apps = [app for app in detector.detect(job_script(job.get("metaData"))) if app not in have]
    return JobChange(job, APP_TAG_TYPE, apps) if apps else None


def class_change(job: Mapping[str, Any], classifier: JobClassifier, archive: FileArchive) -> JobChange | None:
    """The ``jobClass:`` tags and message of an archived job by the rules, where they differ from the job's; or None."""
    key = (job["cluster"], job["jobId"], job["startTime"])
    if job.get("monitoringStatus") != MONITORING_ARCHIVED or not archive.exists(*key):
        return None
    meta = archive.load_meta(*key)
    subcluster = archive.registry().subcluster(job["cluster"], job["subCluster"])
    # The database's values are current (duration, state); the statistics exist only in meta.json.
    matches = classifier.classify({**job, "statistics": meta.get("statistics") or {}}, subcluster)
    have = {t["name"] for t in job.get("tags") or () if t.get("type") == JOB_CLASS_TAG_TYPE}
    classes = [tag for tag, _ in matches if tag not in have]
    message = "\n".join(hint for _, hint in matches if hint)
    if message == (job.get("metaData") or {}).get("message"):
        message = ""
    if not classes and not message:
        return None
    return JobChange(job, JOB_CLASS_TAG_TYPE, classes, message or None)


def write_changes(engine: Engine, archive: FileArchive, changes: Sequence[JobChange]) -> None:
    """Attach the tags and set the messages of ``changes`` in one transaction; meta.json of archived jobs follows.

    A tag that exists with another scope than global (tags are unique by type and name) is a Conflict
    naming the tag: the taggers never widen or narrow someone's tag.
    """
    from sqlalchemy import and_

    from cc_backend.db.limits import check_text
    from cc_backend.db.tables import jobtag_table, tag_table
    from cc_backend.jobs.query import tags_for_jobs
    from cc_backend.jobs.tags import ensure_tag
    from cc_backend.jobs.transaction import rewriting_transaction, sync_archive_meta

    T = tag_table.c
    with rewriting_transaction(engine, archive) as (conn, rewrites):
        tag_ids: dict[tuple[str, str], int] = {}
        for change in changes:
            for name in change.tags:
                key = (change.tag_type, name)
                if key not in tag_ids:
                    scope = conn.execute(select(T.tag_scope).where(and_(T.tag_type == key[0], T.tag_name == name))).scalar()
                    if scope is not None and scope != "global":
                        raise Conflict(f"tag {key[0]}:{name} exists with scope {scope!r}; the taggers attach global "
                                       f"tags only", field="tags")
                    tag_ids[key] = ensure_tag(conn, key[0], name, "global")
        job_ids = [change.job["id"] for change in changes]
        links = {(change.job["id"], tag_ids[(change.tag_type, name)]) for change in changes for name in change.tags}
        if links:
            present = {(row[0], row[1]) for row in conn.execute(select(jobtag_table.c.job_id, jobtag_table.c.tag_id).where(
                jobtag_table.c.job_id.in_(job_ids), jobtag_table.c.tag_id.in_(set(tag_ids.values()))))}
            new = sorted(links - present)
            if new:
                conn.execute(jobtag_table.insert(), [{"job_id": job_id, "tag_id": tag_id} for job_id, tag_id in new])
        for change in changes:
            if change.message is not None:
                db_id = change.job["id"]
                current = conn.execute(select(J.meta_data).where(J.id == db_id)).scalar_one_or_none()
                try:
                    meta = orjson.loads(current) if current else {}
                except orjson.JSONDecodeError:
                    meta = {}
                meta = meta if isinstance(meta, dict) else {}
                meta["message"] = change.message
                conn.execute(update(job_table).where(J.id == db_id).values(
                    meta_data=check_text(J.meta_data, orjson.dumps(meta).decode(), "message")))
        archived = [change for change in changes if change.job.get("jobState") != "running"]
        tags_now = tags_for_jobs(conn, [change.job["id"] for change in archived], None) if archived else {}
        for change in archived:
            # meta.json follows the transaction's tags; of the job it needs only its key and state
            original = sync_archive_meta(conn, archive, change.job, tags=True, job_tags=tags_now[change.job["id"]],
                                         meta_data=None if change.message is None else {"message": change.message})
            if original is not None:
                rewrites.originals.append(original)
