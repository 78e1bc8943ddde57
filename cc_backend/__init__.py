"""cc-backend: job-specific performance monitoring for HPC centres (shared data layer)."""

__version__ = "0.1.0"
