"""Per-user UI settings in the ``configuration`` table (upstream ``repository/userConfig.go`` UpdateConfig)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from cc_backend.db.limits import check_text
from cc_backend.db.tables import configuration_table, user_table
from cc_backend.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cc_backend.config.sections import UiConfig


def set_user_ui_config(engine: Engine, username: str, key: str | None, value: str | None) -> None:
    """Store one UI setting of ``username`` (upstream's ``REPLACE INTO configuration``).

    ``value`` is the JSON text the web frontend sends (``JSON.stringify(...)``); it is stored as given,
    so the row reads back exactly as upstream's would. Text that is not JSON is refused, because
    :func:`cc_backend.auth.users.get_user_ui_config` and upstream's frontend both decode it; values the web UI
    interprets (line width, plots per row, switches, colour scheme) are checked by
    :func:`cc_backend.ui_settings.check_ui_setting`.
    """
    if not key:
        raise InvalidInput("key is required: the name of the UI setting", field="key")
    check_text(configuration_table.c.confkey, key, "key")
    if value is None:
        raise InvalidInput("value is required: the setting as JSON text", field="value")
    check_text(configuration_table.c.value, value, "value")
    from cc_backend.ui_settings import check_ui_setting, decoded

    check_ui_setting(key, decoded(value))
    table = configuration_table
    row = {"username": username, "confkey": key, "value": value}
    with engine.begin() as conn:
        if conn.execute(select(user_table.c.username).where(user_table.c.username == username)).first() is None:
            raise NotFound(f"no such user: {username!r}", field="username")
        dialect = engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(table).values(**row).on_conflict_do_update(
                index_elements=[table.c.username, table.c.confkey], set_={"value": value}))
        elif dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            conn.execute(mysql_insert(table).values(**row).on_duplicate_key_update(value=value))
        else:  # any other engine: replace inside the transaction
            conn.execute(delete(table).where(table.c.username == username, table.c.confkey == key))
            conn.execute(insert(table).values(**row))


# ---------------------------------------------------------------- effective settings

#: The flattened keys of metric selections; per cluster ``<key>:<cluster>``, per subcluster ``<key>:<cluster>:<sub>``.
METRIC_SELECTION_KEYS = {
    "job_list_metrics": "metricConfig_jobListMetrics",
    "job_view_plot_metrics": "metricConfig_jobViewPlotMetrics",
    "job_view_table_metrics": "metricConfig_jobViewTableMetrics",
}


def default_ui_settings(ui: UiConfig) -> dict[str, Any]:
    """The ``ui`` section flattened to upstream's keys (``plotConfiguration_lineWidth``, ...), as its web.go does."""
    settings: dict[str, Any] = {
        "jobList_usePaging": ui.job_list.use_paging,
        "jobList_showFootprint": ui.job_list.show_footprint,
        "nodeList_usePaging": ui.node_list.use_paging,
        "jobView_showPolarPlot": ui.job_view.show_polar_plot,
        "jobView_showFootprint": ui.job_view.show_footprint,
        "jobView_showRoofline": ui.job_view.show_roofline,
        "jobView_showStatTable": ui.job_view.show_stat_table,
        "plotConfiguration_colorBackground": ui.plot_configuration.color_background,
        "plotConfiguration_plotsPerRow": ui.plot_configuration.plots_per_row,
        "plotConfiguration_lineWidth": ui.plot_configuration.line_width,
        "plotConfiguration_colorScheme": list(ui.plot_configuration.color_scheme),
    }
    selections = ui.metric_config
    for attribute, key in METRIC_SELECTION_KEYS.items():
        settings[key] = list(getattr(selections, attribute))
        for cluster in selections.clusters:
            if getattr(cluster, attribute) is not None:
                settings[f"{key}:{cluster.name}"] = list(getattr(cluster, attribute))
            for sub in cluster.sub_clusters:
                if getattr(sub, attribute) is not None:
                    settings[f"{key}:{cluster.name}:{sub.name}"] = list(getattr(sub, attribute))
    return settings


def effective_ui_settings(ui: UiConfig, engine: Engine, username: str | None) -> dict[str, Any]:
    """The site's defaults overlaid with the user's own rows of ``configuration`` (upstream's GetUIConfig)."""
    from cc_backend.auth.users import get_user_ui_config

    settings = default_ui_settings(ui)
    if username:
        settings.update(get_user_ui_config(engine, username))
    return settings


def metric_selection(settings: dict[str, Any], key: str, cluster: str | None = None,
                     subcluster: str | None = None) -> list[str]:
    """The metrics chosen under ``key`` for the most specific of subcluster, cluster and global settings."""
    candidates = []
    if cluster and subcluster:
        candidates.append(f"{key}:{cluster}:{subcluster}")
    if cluster:
        candidates.append(f"{key}:{cluster}")
    candidates.append(key)
    for candidate in candidates:
        value = settings.get(candidate)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        if isinstance(value, str) and value:  # upstream's config files also carry "a,b,c"
            return [item.strip() for item in value.split(",") if item.strip()]
    return []
