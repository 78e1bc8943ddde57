"""Deterministic generator of a realistic demo job archive (archive format version 3).

``generate_archive(root)`` writes ``version.txt``, two clusters (``fritz``: a CPU cluster with Ice Lake and
Sapphire Rapids subclusters; ``alex``: a GPU cluster with 8x A40 and 8x A100 nodes) and ``jobs`` archived
jobs spread over the 30 days before ``now``:

* users and projects with Zipf-like activity (a few users run most jobs), NHR-style ids (``b112dc10``);
* the 9 states of finished jobs (mostly ``completed``), heavy-tailed node counts and lognormal run times capped at the
  walltime, exclusive / ``single_user`` / ``multi_user`` jobs, array jobs, partitions;
* ``metaData.jobName`` / ``jobScript`` with real Slurm scripts (GROMACS, VASP, LAMMPS, OpenFOAM, PyTorch
  via torchrun, Python, CP2K, ORCA, WRF, MATLAB, Julia, STAR-CCM+, plain MPI binaries) that upstream's
  app tagger regexes detect;
* tags (global ``app:*``/``jobClass:*``, private ``scope=<user>``, ``scope=admin``);
* ``meta.json`` ``statistics`` for every metric, and -- unless ``meta_only`` -- ``data.json[.gz]`` with node
  scope series for every metric, core/socket scope for jobs with at most 2 nodes and accelerator scope for
  GPU jobs; application specific profiles plus idle, memory-bound, load-imbalanced and memory-leaking jobs.

Series follow one load model per job: value(t) = lo + span * shape(t) * (1 + sigma * z) per node and metric,
with levels from the application and the hardware (flops below peak, bandwidth below ``memoryBandwidth``,
``cpu_load`` <= cores, clock between idle and max clock, RAPL power between idle and TDP, GPU utilisation
0-100, ...) and noise cut at 3 sigma, so no value is ever clipped.  Per-series and job statistics are computed
from the written (rounded) samples as upstream's archiver does (job avg = round(sum of node avgs / numNodes, 2),
min of mins, max of maxes).  To bound the size, long or many-node jobs get a coarser timestep (a multiple of the
metric's cluster.json timestep), core/socket/accelerator series a coarser one still: a default demo (2,000
jobs) is ~75 MB.  Archived jobs are finished (``monitoringStatus`` 3): running jobs come from the live feeder
(``feeder``: ``cc-backend demo feed`` starts jobs through the REST API, writes their metrics to ``/api/write``
and stops them) or, without a server, from ``live.start_running_jobs`` (``cc-backend demo start-jobs``).

The output is a pure function of ``(seed, jobs, now, meta_only)``: every job draws from its own random
stream (seeded from the seed and the job's index), so neither the number of worker processes nor the chunking
changes a byte.  ``meta.json`` of a ``meta_only`` archive equals that of the full archive except for
``statistics``, which in ``meta_only`` mode are derived analytically from the same per-job load model instead
of from generated series.

Files are written atomically (temporary name in the job's own, freshly created directory + ``rename``) with
plain ``os.open``/``os.write``/``os.rename``: the same guarantee as :func:`cc_backend.fileutil.write_atomic`
without ``mkstemp``'s random names, ``fdopen`` and ``chmod`` per file, which matters at 100,000 files.

The stages live in submodules: ``base`` (constants, seeding), ``clusters``, ``applications``,
``jobs`` (users, projects, meta.json), ``series`` (data.json and statistics), ``archive`` (writing), ``live``
(running jobs and their samples from the same models) and ``feeder`` (the live demo's client).
"""

from cc_backend.demo.archive import DemoSummary, generate_archive
from cc_backend.demo.base import ARCHIVE_VERSION, DEFAULT_JOBS, FINISHED_STATES, default_now
from cc_backend.demo.clusters import cluster_configs

__all__ = [
    "ARCHIVE_VERSION",
    "DEFAULT_JOBS",
    "FINISHED_STATES",
    "DemoSummary",
    "default_now",
    "cluster_configs",
    "generate_archive",
]
