"""Constants of the demo archive and the seeding of its per-job random streams."""

from __future__ import annotations

from cc_backend.archive import ARCHIVE_VERSION  # noqa: F401 - re-exported for the demo's writers

DEFAULT_JOBS = 2000
#: Start times are spread over this many days before ``now``.
WINDOW_DAYS = 30
#: States of a finished job. The archive holds finished jobs only: a job that runs, waits or is suspended is not
#: archived yet (running jobs of the live demo come from ``cc-backend demo feed`` or ``demo start-jobs``).
FINISHED_STATES = (
    "boot_fail", "cancelled", "completed", "deadline", "failed", "node_fail",
    "out_of_memory", "preempted", "timeout",
)
STATE_WEIGHTS = (0.3, 7.5, 71.0, 0.3, 7.0, 0.6, 2.0, 1.2, 4.5)
# Job i with i % FORCE_PERIOD < len(FINISHED_STATES) gets that state: every state shows up in small archives.
FORCE_PERIOD = 97
GZIP_THRESHOLD = 2000  # upstream: data.json > 2000 bytes is stored gzip'ed
GZIP_LEVEL = 4
# Data budget per job (number of samples): keeps a default demo ~100 MB and fast to write.
NODE_MAX_SAMPLES = 720  # at most 12 h at 60 s per node series; longer jobs get a coarser timestep
NODE_BUDGET = 100_000  # all node scope series of one job together
FINE_BUDGET = 24_000  # all core/socket scope series of one job together
ACC_BUDGET = 20_000  # all accelerator scope series of one job together
MIN_SAMPLES = 12
SEED_STRIDE = 10**10


def default_now(seed: int) -> int:
    """The fixed "now" (epoch seconds) of a demo archive of ``seed`` when none is given."""
    return 1_735_732_800 + (seed % 101) * 86_400  # 2025-01-01 12:00 UTC + up to 100 days


def mix(seed: int, stream: int, index: int) -> int:
    """Seed of the random stream ``stream`` of job ``index`` (distinct for all index < 10**10)."""
    return (seed * 16 + stream) * SEED_STRIDE + index


def r2(x: float) -> float:
    return round(x, 2)
