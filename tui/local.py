"""The terminal UI's data from this machine's database and job archive, through the core (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cc_backend.errors import CCError, ConfigError, DatabaseVersionError
from cc_backend.tui.source import GroupBy, Identity, JobPage, SourceError

if TYPE_CHECKING:
    from cc_backend.archive.cluster import Cluster
    from cc_backend.auth.security import Viewer
    from cc_backend.jobs.filter import JobFilter, OrderBy
    from cc_backend.metrics.dispatch import MetricDispatch
    from cc_backend.runtime import Runtime


class LocalSource:
    """Reads and changes jobs as the core does for the command line: as a local administrator by default,
    or as one account of the database (``as_user``), seeing what that account would see on the server."""

    def __init__(self, runtime: Runtime, as_user: str | None = None) -> None:
        self.runtime = runtime
        self.as_user = as_user
        self.viewer: Viewer | None = None
        self.identity = Identity(username=as_user or "", roles=("admin",), where="local")

    def connect(self) -> None:
        from cc_backend.auth.security import SYSTEM, Viewer
        from cc_backend.auth.users import find_user

        try:
            self.runtime.load_env()
            url = self.runtime.database_url
            if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
                # Opening it would create an empty file that later commands take for a database.
                raise SourceError(f"There is no database at {url.removeprefix('sqlite:///')} "
                                  "(give --config, or create one with cc-backend init)")
            engine = self.runtime.engine  # checks the schema version
            self.runtime.archive.registry()
        except SourceError:
            raise
        except DatabaseVersionError as exc:
            raise SourceError(f"The database cannot be used: {exc.message}") from None
        except ConfigError as exc:
            raise SourceError(f"The configuration cannot be used: {exc.message}") from None
        except CCError as exc:
            raise SourceError(exc.message) from None
        except Exception as exc:  # an unreadable file or an unreachable MySQL server: say which, no traceback
            raise SourceError(f"The database or job archive cannot be opened: {exc}") from None
        where = f"local: {self.runtime.database_url.removeprefix('sqlite:///')}"
        # CO2 of a job's energy needs the site's grams per kWh, which only the local configuration knows.
        extra = {"emission_constant": self.runtime.config.main.emission_constant}
        if self.as_user is None:
            self.viewer = SYSTEM
            self.identity = Identity(username="(local admin)", roles=SYSTEM.roles, where=where, extra=extra)
            return
        user = find_user(engine, self.as_user)
        if user is None:
            raise SourceError(f"There is no account {self.as_user!r} in the database (--as-user).")
        self.viewer = Viewer(username=user.username, roles=tuple(user.roles), projects=tuple(user.projects))
        self.identity = Identity(username=user.username, roles=self.viewer.roles, projects=self.viewer.projects,
                                 where=where, extra=extra)

    def close(self) -> None:
        self.runtime.close()

    # --- reading ------------------------------------------------------------------------------------

    def clusters(self) -> list[Cluster]:
        return list(self.runtime.archive.registry())

    def resolve_tags(self, specs: list[str]) -> list[int]:
        from cc_backend.jobs.tags import resolve_tag_ids

        return resolve_tag_ids(self.runtime.engine, specs, viewer=self.viewer)

    def jobs(self, flt: JobFilter | None, order: OrderBy | None, page: int, per_page: int) -> JobPage:
        from cc_backend.jobs.filter import Page
        from cc_backend.jobs.query import page_of_jobs

        jobs, has_next = page_of_jobs(self.runtime.engine, [flt] if flt else [], order=order,
                                      page=Page(page=page, itemsPerPage=per_page), viewer=self.viewer)
        return JobPage(jobs, has_next)

    def count_jobs(self, flt: JobFilter | None) -> int:
        from cc_backend.jobs.query import count_jobs

        return count_jobs(self.runtime.engine, [flt] if flt else [], viewer=self.viewer)

    def job(self, db_id: int) -> dict[str, Any]:
        from cc_backend.jobs.query import get_job

        return get_job(self.runtime.engine, db_id, viewer=self.viewer)

    def job_report(self, db_id: int) -> dict[str, Any]:
        from cc_backend.jobs.report import efficiency_report

        # not report.runtime_report: its live data would be this process's empty built-in store (see _live)
        runtime = self.runtime
        return efficiency_report(runtime.archive, self.job(db_id), classifier=runtime.taggers.job_classes(),
                                 emission_constant=runtime.config.main.emission_constant, live=self._live(),
                                 viewer=self.viewer)

    def job_metrics(self, job: dict[str, Any], metrics: list[str] | None, scopes: list[str] | None,
                    resolution: int | None) -> list[dict[str, Any]]:
        from cc_backend.metrics import jobdata

        runtime = self.runtime
        return jobdata.as_metric_list(jobdata.visible_job_data(
            runtime.archive, job, viewer=self.viewer, resampling=runtime.config.main.resampling,
            metrics=metrics, scopes=scopes, resolution=resolution, live=self._live()))

    def _live(self) -> MetricDispatch | None:
        """Live data of running jobs, from an external metric store only: this process's built-in store
        is empty (the server's holds the samples), so it would show nothing rather than nothing wrong."""
        if not self.runtime.config.metric_store_external:
            return None
        return self.runtime.metric_data

    def _hidden(self, job: dict[str, Any]) -> frozenset[str]:
        from cc_backend.metrics import jobdata

        return jobdata.hidden_metrics(self.runtime.archive.registry(), job["cluster"], job.get("subCluster"),
                                      self.viewer)

    def job_stats(self, job: dict[str, Any], metrics: list[str] | None) -> list[dict[str, Any]]:
        from cc_backend.metrics import jobdata

        return jobdata.job_stats(self.runtime.archive, job, metrics, hidden=self._hidden(job), live=self._live())

    def scoped_job_stats(self, job: dict[str, Any], metrics: list[str] | None,
                         scopes: list[str] | None) -> list[dict[str, Any]]:
        from cc_backend.metrics import jobdata

        archive = self.runtime.archive
        return jobdata.scoped_job_stats(archive, job, metrics, scopes, registry=archive.registry(),
                                        hidden=self._hidden(job), live=self._live())

    def group_statistics(self, group_by: GroupBy, flt: JobFilter | None) -> list[dict[str, Any]]:
        from cc_backend.jobs.statistics import StatsOptions, job_statistics

        options = StatsOptions(group_by=group_by,
                               short_duration=self.runtime.config.main.short_running_jobs_duration)
        return job_statistics(self.runtime.engine, [flt] if flt else [], self.viewer, options)

    def tags(self) -> list[dict[str, Any]]:
        from cc_backend.jobs.tags import list_tags

        return list_tags(self.runtime.engine, viewer=self.viewer, with_counts=True)

    def nodes(self, cluster: str) -> list[dict[str, Any]]:
        from cc_backend.jobs.filter import StringInput
        from cc_backend.nodes import NodeFilter, check_node_access, query_nodes

        check_node_access(self.viewer)
        return query_nodes(self.runtime.engine, [NodeFilter(strings={"cluster": StringInput(eq=cluster)})])

    # --- changing -----------------------------------------------------------------------------------

    def add_tag(self, db_id: int, tag_type: str, tag_name: str, scope: str) -> list[dict[str, Any]]:
        from cc_backend.jobs.tags import add_tags_to_job, create_tag

        runtime = self.runtime
        tag = create_tag(runtime.engine, tag_type, tag_name, scope, viewer=self.viewer)
        return add_tags_to_job(runtime.engine, runtime.archive, db_id, [tag["id"]], viewer=self.viewer)

    def remove_tag(self, db_id: int, tag_id: int) -> list[dict[str, Any]]:
        from cc_backend.jobs.tags import remove_tags_from_job

        runtime = self.runtime
        return remove_tags_from_job(runtime.engine, runtime.archive, db_id, [tag_id], viewer=self.viewer)

