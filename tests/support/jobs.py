"""Job documents for the REST API in tests."""

from __future__ import annotations

HOST = "f0101"  # fritz, subcluster main, in the peer archive


def start_payload(job_id: int, start_time: int, **extra) -> dict:
    """A start_job body as cc-slurm-adapter sends it: one fritz node, 72 hardware threads."""
    return {"jobId": job_id, "user": "testuser", "project": "testproj", "cluster": "fritz", "partition": "singlenode",
            "walltime": 3600, "arrayJobId": 0, "numNodes": 1, "numHwthreads": 72, "numAcc": 0, "shared": "none",
            "monitoringStatus": 1, "smt": 1, "resources": [{"hostname": HOST, "hwthreads": list(range(72))}],
            "metaData": {"jobScript": "blablabla..."}, "startTime": start_time, **extra}
