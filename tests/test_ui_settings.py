"""Effective UI settings: the config's ``ui`` section flattened to upstream's keys, overlaid by a user's own rows."""

from __future__ import annotations

from cc_backend.auth.users import add_user
from cc_backend.config.sections import UiConfig
from cc_backend.ui_config import default_ui_settings, effective_ui_settings, metric_selection, set_user_ui_config


def test_defaults_use_upstreams_flattened_keys():
    ui = UiConfig.model_validate({"plot-configuration": {"line-width": 2},
                                  "metric-config": {"clusters": [{"name": "fritz", "job-list-metrics": ["mem_bw"],
                                                                  "sub-clusters": [{"name": "spr", "job-list-metrics": ["ipc"]}]}]}})
    settings = default_ui_settings(ui)
    assert settings["plotConfiguration_lineWidth"] == 2
    assert settings["plotConfiguration_plotsPerRow"] == 3
    assert settings["jobView_showPolarPlot"] is True
    assert settings["metricConfig_jobListMetrics"] == ["cpu_load", "flops_any", "mem_bw", "mem_used"]
    assert metric_selection(settings, "metricConfig_jobListMetrics", "fritz") == ["mem_bw"]
    assert metric_selection(settings, "metricConfig_jobListMetrics", "fritz", "spr") == ["ipc"]
    assert metric_selection(settings, "metricConfig_jobListMetrics", "fritz", "main") == ["mem_bw"]
    assert metric_selection(settings, "metricConfig_jobListMetrics", "alex") == ["cpu_load", "flops_any", "mem_bw", "mem_used"]
    assert metric_selection({"k": "a, b"}, "k") == ["a", "b"]


def test_a_users_rows_override_the_defaults(engine):
    add_user(engine, "ann", password="pw-ann-1", roles=["user"])
    set_user_ui_config(engine, "ann", "plotConfiguration_lineWidth", "1")
    set_user_ui_config(engine, "ann", "metricConfig_jobListMetrics:alex", '["acc_utilization"]')
    settings = effective_ui_settings(UiConfig(), engine, "ann")
    assert settings["plotConfiguration_lineWidth"] == 1
    assert metric_selection(settings, "metricConfig_jobListMetrics", "alex") == ["acc_utilization"]
    assert effective_ui_settings(UiConfig(), engine, "bob")["plotConfiguration_lineWidth"] == 3
