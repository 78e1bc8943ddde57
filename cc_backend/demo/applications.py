"""Applications of the demo jobs: load profiles, Slurm scripts, job names, walltime and size distributions."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cc_backend.demo.base import STATE_WEIGHTS
from cc_backend.demo.clusters import METRICS

UNIT_OF = {m: v[0] for m, v in METRICS.items()}


@dataclass(frozen=True)
class App:
    kind: str  # mpi | threads | serial | gpu
    eff: tuple[float, float]  # fraction of the busy cores' flops_any peak
    dp: tuple[float, float]  # share of DP in flops_any
    bw: tuple[float, float]  # fraction of the memory bandwidth
    mem: tuple[float, float]  # fraction of node (or allocated share of) memory
    ipc: tuple[float, float]
    vec: float  # how AVX heavy: lowers the clock
    comm: tuple[float, float]  # fraction of the IB link in multi-node runs
    pattern: str  # steady | scf | phases | epochs | bursty
    gpu: tuple[float, float, float, float, float, float] | None = None  # util lo/hi, mem lo/hi, power lo/hi
    clusters: tuple[tuple[str, float], ...] = (("fritz", 1.0),)
    tag: str | None = None  # app tag upstream's tagger would derive from the job script


APPS: dict[str, App] = {
    "gromacs": App("mpi", (0.10, 0.22), (0.0, 0.08), (0.10, 0.25), (0.02, 0.06), (1.6, 2.3), 0.9, (0.08, 0.3),
                    "steady", (55, 92, 0.04, 0.15, 0.45, 0.75), (("fritz", 0.6), ("alex", 0.4)), "gromacs"),
    "vasp": App("mpi", (0.06, 0.18), (0.9, 1.0), (0.30, 0.55), (0.15, 0.55), (1.1, 1.8), 0.8, (0.1, 0.35),
                 "scf", tag="vasp"),
    "lammps": App("mpi", (0.03, 0.10), (0.85, 1.0), (0.10, 0.30), (0.02, 0.10), (1.2, 1.7), 0.3, (0.03, 0.15),
                   "steady", (70, 92, 0.05, 0.3, 0.5, 0.8), (("fritz", 0.75), ("alex", 0.25)), "lammps"),
    "openfoam": App("mpi", (0.008, 0.025), (1.0, 1.0), (0.65, 0.90), (0.12, 0.40), (0.45, 0.8), 0.15,
                     (0.05, 0.2), "phases", tag="openfoam"),
    "starccm": App("mpi", (0.01, 0.04), (1.0, 1.0), (0.50, 0.80), (0.10, 0.35), (0.6, 1.0), 0.2, (0.05, 0.2),
                    "steady", tag="starccm"),
    "wrf": App("mpi", (0.02, 0.06), (0.0, 0.1), (0.45, 0.75), (0.12, 0.30), (0.7, 1.1), 0.4, (0.05, 0.2),
                "phases"),
    "cp2k": App("mpi", (0.05, 0.15), (0.95, 1.0), (0.25, 0.50), (0.10, 0.45), (1.1, 1.7), 0.7, (0.1, 0.3),
                 "scf", tag="cp2k"),
    "orca": App("threads", (0.02, 0.08), (1.0, 1.0), (0.10, 0.30), (0.05, 0.40), (1.2, 1.9), 0.5, (0.0, 0.0),
                 "phases", tag="orca"),
    "custom": App("mpi", (0.005, 0.10), (0.5, 1.0), (0.05, 0.50), (0.02, 0.30), (0.6, 2.0), 0.5, (0.02, 0.2),
                   "steady"),
    "pytorch": App("gpu", (0.001, 0.01), (0.3, 0.6), (0.02, 0.08), (0.05, 0.25), (0.8, 1.4), 0.3, (0.02, 0.2),
                    "epochs", (80, 98, 0.6, 0.95, 0.7, 0.95), (("alex", 1.0),), "python"),
    "python": App("serial", (0.001, 0.02), (0.8, 1.0), (0.01, 0.08), (0.02, 0.40), (0.8, 1.6), 0.2, (0.0, 0.0),
                   "bursty", (5, 60, 0.05, 0.5, 0.2, 0.5), (("fritz", 0.75), ("alex", 0.25)), "python"),
    "matlab": App("serial", (0.001, 0.01), (1.0, 1.0), (0.01, 0.05), (0.02, 0.20), (1.0, 2.0), 0.3, (0.0, 0.0),
                   "bursty", tag="matlab"),
    "julia": App("threads", (0.01, 0.08), (0.9, 1.0), (0.05, 0.30), (0.02, 0.30), (1.0, 2.0), 0.4, (0.0, 0.0),
                  "steady", tag="julia"),
}

DOMAINS: dict[str, tuple[float, dict[str, float]]] = {
    "md": (18, {"gromacs": 5, "lammps": 3, "python": 1}),
    "materials": (15, {"vasp": 6, "cp2k": 2, "lammps": 1, "python": 1}),
    "chemistry": (10, {"orca": 5, "cp2k": 3, "python": 2}),
    "cfd": (12, {"openfoam": 6, "starccm": 2, "custom": 2, "python": 1}),
    "climate": (6, {"wrf": 6, "python": 2, "custom": 1}),
    "ml": (20, {"pytorch": 8, "python": 3}),
    "data": (10, {"python": 5, "matlab": 2, "julia": 2}),
    "physics": (9, {"custom": 5, "julia": 2, "python": 2}),
}

HEADER = (
    "#!/bin/bash -l\n"
    "#SBATCH --job-name={name}\n"
    "{res}"
    "#SBATCH --time={time}\n"
    "#SBATCH --partition={partition}\n"
    "#SBATCH --account={project}\n"
    "#SBATCH --output=%x.%j.out\n"
    "#SBATCH --export=NONE\n"
    "\n"
    "unset SLURM_EXPORT_ENV\n"
)

BODIES: dict[str, tuple[str, ...]] = {
    "gromacs": (
        "module load gromacs/{gmxver}-impi-mkl\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=1\n"
        "gmx_mpi grompp -f {mdp}.mdp -c {sys}_npt.gro -t {sys}_npt.cpt -p topol.top -o {sys}_{mdp}.tpr\n"
        "srun gmx_mpi mdrun -s {sys}_{mdp}.tpr -deffnm {sys}_{mdp} -maxh {maxh} -cpi -dlb yes\n",
    ),
    "gromacs-gpu": (
        "module load gromacs/{gmxver}-cuda12\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=16\n"
        "srun gmx mdrun -s {sys}_{mdp}.tpr -deffnm {sys}_{mdp} -nb gpu -pme gpu -bonded gpu -update gpu "
        "-ntomp $OMP_NUM_THREADS -maxh {maxh} -cpi\n",
    ),
    "vasp": (
        "module load intel/2022.1.0 intelmpi/2021.6.0 mkl/2022.1.0 vasp6/6.4.2\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=1\n"
        "cp INCAR.{step} INCAR\n"
        "cp KPOINTS.{step} KPOINTS\n"
        "srun vasp_{vbin} > vasp_{step}.out\n",
    ),
    "lammps": (
        "module load lammps/20230802-gcc11-openmpi-plumed\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "srun lmp -in in.{sys} -log log.{sys} -var seed {num}\n",
    ),
    "lammps-gpu": (
        "module load lammps/20230802-gcc11-openmpi-kokkos-cuda\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "srun lmp -k on g {gpn} -sf kk -pk kokkos newton on neigh full -in in.{sys} -log log.{sys}\n",
    ),
    "openfoam": (
        "module load openfoam/{foamver}\n"
        "source $FOAM_BASH\n"
        "cd cases/{sys}\n"
        "blockMesh > log.blockMesh 2>&1\n"
        "decomposePar -force > log.decomposePar 2>&1\n"
        "srun {solver} -parallel > log.{solver} 2>&1\n"
        "reconstructPar -latestTime > log.reconstructPar 2>&1\n",
    ),
    "starccm": (
        "module load star-ccm+/18.02.008-r8\n"
        "scontrol show hostnames $SLURM_JOB_NODELIST > hosts.txt\n"
        "starccm+ -batch run.java -np $SLURM_NTASKS -machinefile hosts.txt -mpi intel -power "
        "-podkey $PODKEY {sys}.sim\n",
    ),
    "wrf": (
        "module load netcdf-fortran/4.6.1-intel hdf5/1.14.1-intel-impi wrf/4.5.2-dmpar\n"
        "cd $WORK/wrf/{sys}\n"
        "ln -sf $WPS_DIR/met_em.d0* .\n"
        "srun ./real.exe\n"
        "srun ./wrf.exe\n",
    ),
    "cp2k": (
        "module load cp2k/2024.1-openmpi-scalapack-plumed\n"
        "cd $SLURM_SUBMIT_DIR\n"
        "export OMP_NUM_THREADS=2\n"
        "srun cp2k.psmp -i {sys}.inp -o {sys}.out\n",
    ),
    "orca": (
        "module load orca/5.0.4\n"
        "cp $SLURM_SUBMIT_DIR/{sys}.inp $TMPDIR/ && cd $TMPDIR\n"
        "$(which orca) {sys}.inp > $SLURM_SUBMIT_DIR/{sys}.out\n"
        "cp *.gbw *.xyz $SLURM_SUBMIT_DIR/\n",
    ),
    "custom": (
        "module load intel/2023.2.1 intelmpi/2021.10.0\n"
        "export I_MPI_PIN_DOMAIN=core\n"
        "cd $WORK/runs/{sys}\n"
        "srun ./bin/{sys} -n {num} -steps 10000 -o out_{num}\n",
    ),
    "pytorch": (
        "module load python/3.11-anaconda cuda/12.1.1 cudnn/8.9.2\n"
        "conda activate {env}\n"
        "export OMP_NUM_THREADS=8\n"
        "export NCCL_DEBUG=WARN\n"
        "cd $WORK/{sys}\n"
        "srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node={gpn} --rdzv_id=$SLURM_JOB_ID "
        "--rdzv_backend=c10d --rdzv_endpoint=$(hostname):29500 train.py --config configs/{sys}.yaml "
        "--epochs {num} --batch-size {bs}\n",
        "module load python/3.11-anaconda cuda/12.1.1\n"
        "conda activate {env}\n"
        "cd $WORK/{sys}\n"
        "python train.py --model {sys} --epochs {num} --lr 3e-4 --batch-size {bs} --data $WORK/datasets/{ds}\n",
    ),
    "python": (
        "module load python/3.11-anaconda\n"
        "conda activate {env}\n"
        "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n"
        "cd $WORK/{project}\n"
        "python {sys}.py --input $WORK/data/run{num} --output results/{sys}_{num}.npz\n",
    ),
    "python-gpu": (
        "module load python/3.11-anaconda cuda/12.1.1\n"
        "conda activate {env}\n"
        "cd $WORK/{project}\n"
        "python {sys}.py --device cuda --input $WORK/data/run{num}\n",
    ),
    "matlab": (
        "module load matlab/R2023b\n"
        "cd $WORK/{project}\n"
        "matlab -nodisplay -nosplash -batch \"{sys}({num})\"\n",
    ),
    "julia": (
        "module load julia/1.10.2\n"
        "export JULIA_NUM_THREADS=$SLURM_CPUS_PER_TASK\n"
        "cd $WORK/{project}\n"
        "julia --project=. {sys}.jl {num}\n",
    ),
}

# words for job names and scripts; none of them matches an app tagger regex of another application
SYSTEMS: dict[str, tuple[str, ...]] = {
    "gromacs": ("lysozyme", "popc_bilayer", "abeta42", "spike_rbd", "gpcr_a2a", "villin", "kcsa_channel"),
    "vasp": ("Si_bulk", "TiO2_anatase", "LiCoO2", "MoS2_slab", "Fe3O4_111", "GaN_defect", "perovskite_MAPbI3"),
    "lammps": ("lj_melt", "polymer_melt", "eam_cu", "reaxff_hns", "rhodo", "silica_glass"),
    "openfoam": ("motorBike", "pitzDaily", "channel395", "damBreak", "airfoil2D", "heatExchanger"),
    "starccm": ("cooling_jacket", "intake_manifold", "wing_body", "pump_impeller"),
    "wrf": ("europe_12km", "bavaria_3km", "alps_1km", "conus_12km"),
    "cp2k": ("water_64", "zeolite_md", "nacl_interface", "mof_adsorption", "h2o_512_rpa"),
    "orca": ("caffeine_opt", "fe_porphyrin", "benzene_dlpno", "cu_complex_td", "ru_catalyst_freq"),
    "custom": ("heat3d", "lbm_solver", "nbody_sim", "mc_transport", "dns_channel", "spectral_solver"),
    "pytorch": ("resnet50", "vit_b16", "gpt2_medium", "unet3d", "bert_large", "llama2_7b_lora", "diffusion_xl"),
    "python": ("analyse_trajectories", "postprocess_fields", "fit_spectra", "train_xgboost", "mc_sampling",
               "feature_extraction", "jax_md_sim", "cupy_fft_bench"),
    "matlab": ("run_parameter_study", "solve_heat_eq", "process_images", "simulate_grid"),
    "julia": ("simulate_ising", "solve_ode_ensemble", "lattice_boltzmann", "optimize_portfolio"),
}
JOBNAME_SUFFIX: dict[str, tuple[str, ...]] = {
    "gromacs": ("md", "prod", "equil", "npt"),
    "vasp": ("relax", "scf", "bands", "dos", "md"),
}
ENVS = ("torch2", "pt21", "ml-env", "sci", "analysis", "jax")
DATASETS = ("imagenet", "cifar100", "coco2017", "openwebtext", "brats2021")
WALLTIMES_H = (0.5, 1, 2, 4, 6, 8, 10, 12, 24)
_WALLTIME_W = (4, 10, 10, 14, 8, 10, 5, 12, 27)
MULTINODE = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256)
PRIVATE_TAGS = (("project", "paper-draft"), ("campaign", "batch-a"), ("campaign", "batch-b"),
                 ("note", "rerun"), ("note", "baseline"), ("project", "thesis"))
ADMIN_TAGS = (("admin", "contacted-user"), ("admin", "review"), ("support", "ticket-open"),
               ("admin", "allocation-check"))


def cumulative(weights: Iterable[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def pick(rng: random.Random, items: tuple[Any, ...] | list[Any], cum: list[float]) -> Any:
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


STATE_CUM = cumulative(STATE_WEIGHTS)
WALLTIME_CUM = cumulative(_WALLTIME_W)
MULTINODE_CUM = cumulative(n ** -1.15 * (1.0 if n & (n - 1) == 0 else 0.45) for n in MULTINODE)
MULTINODE_CUM_BIG = cumulative(n ** -0.6 * (1.0 if n & (n - 1) == 0 else 0.45) for n in MULTINODE)
