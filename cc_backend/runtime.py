"""The services every front end needs (config, database, job archive, metric data), created on first use."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.archive.fs import FileArchive
    from cc_backend.config import Config, Secrets
    from cc_backend.metrics.dispatch import MetricDispatch
    from cc_backend.taggers.service import JobTaggers


class Runtime:
    """Holds one configuration and opens the database and archive lazily."""

    def __init__(self, config_path: str | None = None, env_path: str = ".env") -> None:
        self.config_path = config_path
        self.env_path = env_path
        #: The archiving queue of a running server (set by the server; None elsewhere).
        self.archiver: Any = None
        self._metric_store: Any = None
        #: Request threads and the NATS thread may ask for the store at once: only one may be created.
        self._metric_store_lock = threading.Lock()

    @cached_property
    def config(self) -> Config:
        from cc_backend.config import load_config

        return load_config(self.config_path)

    @cached_property
    def secrets(self) -> Secrets:
        from cc_backend.config import load_env

        return load_env(self.env_path)

    def load_env(self) -> None:
        """Read .env into the environment now (the config may refer to it, as upstream's startup order does)."""
        self.secrets  # noqa: B018 - the cached property reads the file once

    @cached_property
    def database_url(self) -> str:
        return self.config.database_url()

    @cached_property
    def raw_engine(self) -> Engine:
        """The engine without a schema version check (for the migration flags)."""
        from cc_backend.db.engine import Tuning, make_engine

        db = self.config.main.db_config
        tuning = Tuning(db.cache_size_mb, db.soft_heap_limit_mb, db.max_open_connections,
                        db.max_idle_connections, db.max_idle_time_minutes, db.busy_timeout_ms)
        if self.database_url.startswith("sqlite:///"):
            from pathlib import Path

            Path(self.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return make_engine(self.database_url, tuning=tuning)

    @cached_property
    def engine(self) -> Engine:
        """The engine of a database at the current schema version; refuses anything else."""
        from cc_backend.db.migrate import check_version

        check_version(self.raw_engine)
        return self.raw_engine

    @cached_property
    def archive(self) -> FileArchive:
        from cc_backend.archive.fs import FileArchive
        from cc_backend.errors import ConfigError

        cfg = self.config.archive
        if cfg.kind != "file":
            raise ConfigError(f"archive.kind {cfg.kind!r} is not supported yet; use \"file\"")
        return FileArchive(cfg.path)

    @property
    def metric_store(self) -> Any:
        """The built-in metric store (``metric-store`` section, defaults without one), created on first use.

        Settable, so that a server can install one restored from its checkpoints.
        """
        if self._metric_store is None:
            from cc_backend.metricstore.store import MetricStore

            with self._metric_store_lock:
                if self._metric_store is None:
                    self._metric_store = MetricStore(self.archive.registry(), self.config.metric_store)
        return self._metric_store

    @metric_store.setter
    def metric_store(self, store: Any) -> None:
        self._metric_store = store

    @cached_property
    def metric_data(self) -> MetricDispatch:
        """Live metric data (running jobs, nodes, health) by upstream's ``metric-store-external`` rules."""
        from cc_backend.metrics.dispatch import MetricDispatch

        return MetricDispatch(lambda: self.archive.registry(), self.config, lambda: self.metric_store)

    @cached_property
    def taggers(self) -> JobTaggers:
        """Application and job-class taggers (their hooks act only with ``main.enable-job-taggers``)."""
        from cc_backend.taggers.service import JobTaggers

        return JobTaggers(lambda: self.engine, lambda: self.archive, enabled=self.config.main.enable_job_taggers)

    def close(self) -> None:
        if "raw_engine" in self.__dict__:
            self.raw_engine.dispose()
