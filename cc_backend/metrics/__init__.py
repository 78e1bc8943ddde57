"""Metric data: job series from the archive (``jobdata``), node series (``nodedata``), resampling, statistics, caches."""
