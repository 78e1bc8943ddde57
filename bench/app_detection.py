"""Benchmark: application detection on 100,000 generated job scripts against the goal of 20,000 scripts/s."""
import random
import sys
import time

from cc_backend.taggers.apps import AppDetector

GOAL = 20_000
APP_LINES = ["module load gromacs/2023", "srun gmx_mpi mdrun -deffnm md", "mpirun vasp_std", "python train.py",
             "conda activate torch", "simpleFoam -parallel", "srun lmp -in in.lj", "srun cp2k.psmp -i h2o.inp",
             "module load namd/3.0", "mpirun pw.x -in scf.in", "matlab -batch run", "# module load orca"]
NOISE = ["#SBATCH --nodes=2", "#SBATCH --time=24:00:00", "export OMP_NUM_THREADS=8", "cd $SLURM_SUBMIT_DIR",
         "echo start $(date)", "module purge", "cp input/* $TMPDIR/", "ulimit -s unlimited", "set -euo pipefail"]


def scripts(count: int) -> list[str]:
    rng = random.Random(14)
    out = []
    for _ in range(count):
        lines = ["#!/bin/bash"] + rng.choices(NOISE, k=rng.randint(30, 78)) + rng.sample(APP_LINES, k=rng.randint(0, 2))
        rng.shuffle(lines)
        out.append("\n".join(lines))
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = scripts(count)
    detector = AppDetector.load()
    start = time.perf_counter()
    for s in data:
        s.lower()
    floor = count / (time.perf_counter() - start)
    start = time.perf_counter()
    hits = sum(1 for s in data if detector.detect(s))
    rate = count / (time.perf_counter() - start)
    print(f"{count} scripts, {hits} with an application: {rate:,.0f} scripts/s (goal {GOAL:,}/s, "
          f"{'met' if rate >= GOAL else 'MISSED'}); floor (lower-casing alone) {floor:,.0f}/s")


if __name__ == "__main__":
    main()
