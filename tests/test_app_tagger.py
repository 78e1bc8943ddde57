"""Application detection on realistic job scripts: shipped patterns, comments, site overrides, bad patterns."""
import pytest

from cc_backend.taggers.apps import SHIPPED_DIR, AppDetector

HEALTHY = "#!/bin/bash\n#SBATCH --nodes=1\nmodule purge\ncd $SLURM_SUBMIT_DIR\nsrun ./my_solver input.dat\n"
SCRIPTS = {
    "alf": "module load alf\nsrun alf run", "caracal": "srun caracal config.yml", "chroma": "mpirun chroma -i in.xml",
    "cp2k": "srun cp2k.psmp -i h2o.inp", "cpmd": "mpirun cpmd.x inp", "flame": "module load flame\nsrun flame",
    "gromacs": "module load GROMACS/2023\nsrun gmx_mpi mdrun -deffnm md", "julia": "julia --project run.jl",
    "lammps": "srun lmp -in in.lj", "matlab": "matlab -batch run_all", "openfoam": "decomposePar\nsimpleFoam -parallel",
    "orca": "module load orca/5.0.4\n$(which orca) job.inp", "python": "conda activate torch\npython train.py",
    "starccm": "starccm+ -batch run.java", "turbomole": "jobex -ri", "vasp": "mpirun vasp_std",
    "namd": "srun namd3 +p8 run.conf", "quantum-espresso": "mpirun pw.x -in scf.in", "amber": "srun pmemd.cuda -O",
    "abinit": "mpirun abinit run.abi", "nwchem": "mpirun nwchem input.nw", "ml": "torchrun --nproc 4 train.py",
}


@pytest.fixture(scope="module")
def detector():
    return AppDetector.load(SHIPPED_DIR)


def test_every_shipped_app_has_a_script():
    assert sorted(p.stem for p in SHIPPED_DIR.glob("*.txt")) == sorted(SCRIPTS)


@pytest.mark.parametrize("app", sorted(SCRIPTS))
def test_shipped_app_matches_and_healthy_script_does_not(detector, app):
    assert app in detector.detect("#!/bin/bash\n#SBATCH -N 2\n" + SCRIPTS[app])
    assert detector.detect(HEALTHY) == []


def test_commented_lines_do_not_match(detector):
    assert detector.detect("#!/bin/bash\n# module load vasp\n  # srun gmx mdrun\nsrun ./a.out  # not lammps\n") == []


def test_several_apps_mixed_case(detector):
    script = "MODULE LOAD Gromacs\nSRUN GMX_MPI MDRUN\nPython3 analyse.py\nmpirun VASP_STD"
    assert detector.detect(script) == ["gromacs", "python", "vasp"]


def test_no_false_positives(detector):
    assert detector.detect("module load orcaflex\nmodule load cpython-dev\n./valfe\n") == []


def test_site_file_overrides_and_bad_pattern_is_reported(tmp_path, detector):
    (tmp_path / "vasp.txt").write_text("\\bmyvasp\\b\n")
    (tmp_path / "broken.txt").write_text("\\bok\\b\n(unclosed\n")
    site = AppDetector.load(SHIPPED_DIR, tmp_path)
    assert site.detect("mpirun vasp_std") == []
    assert site.detect("mpirun myvasp") == ["vasp"]
    assert len(site.errors) == 1 and site.errors[0].startswith(f"{tmp_path / 'broken.txt'}:2:")
    assert site.detect("run ok") == ["broken"]
