"""The built-in metric store: line-protocol ingestion, float32 buffers per host and metric, cc-metric-store queries."""
