"""Grids on a real one-node Slurm started here (tests/slurm/cluster.py) and in local worker processes.

Table IV Protocol 2 at smoke scale gives the same table, number for number, with the executors `local`, `local:2` and
`slurm`; a second submission submits nothing queued, running or done; a failing job is named while the others finish,
and only it is submitted again; `fgdi grid cancel` cancels the queued jobs and a later submission submits them again;
`fgdi grid collect` gives the table once every run is done; a job interrupted the way a preemption does resumes from
its checkpoint and ends bit for bit as the same job uninterrupted.
Needs root (the daemons); skipped elsewhere, except in CI (CI=true), where it must run.
"""
import json, os, re, shutil, subprocess, sys, time
from dataclasses import replace
from pathlib import Path
import pandas as pd
import pytest
from test_tables import papermill, streams, NBS
sys.path.insert(0, str(Path(__file__).parent/'slurm'))
from cluster import one_node_slurm, why_not
from fgdi.config import RunConfig, make_config
from fgdi.grid import GridStop, Slurm, plan_grid, recorded_job, run_grid

FGDI = str(Path(sys.executable).parent/'fgdi')
SMOKE_P2 = (('scale', 'smoke'), ('protocol', 2), ('targets', 'M'), ('seeds', '1'))
SMALL_JOBS = dict(gpus=0, cpus=1, mem_gb=1, time=10)  # what the test node can give each job
SLURM = (('executor', 'slurm'), *((f'slurm_{k}', v) for k, v in SMALL_JOBS.items()))
HELD = ('slurm_extra', '--hold')  # sbatch --hold: the jobs stay queued until released, whatever the machine's load

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    "The environment of a running one-node Slurm (SLURM_CONF), with a private fgdi cache; stopped after the module."
    reason = why_not()
    if reason:
        if os.environ.get('CI') == 'true': pytest.fail(f'CI must run the Slurm tests, but: {reason}')
        pytest.skip(reason)
    with one_node_slurm() as (slurm_env, _):
        yield {**slurm_env, 'FGDI_CACHE': str(tmp_path_factory.mktemp('cache')), 'PYTHONUNBUFFERED': '1',
               'OMP_NUM_THREADS': '1'}

def table4(d:Path, *params, env):
    "Execute Table IV (Protocol 2, target M, smoke) into `d` → (process, its CSV or None)."
    p, _ = papermill('table4.ipynb', d, *SMOKE_P2, ('runs_dir', d/'runs'), ('out_dir', d), *params, env=env)
    csv = d/'table4_protocol2.csv'
    return p, pd.read_csv(csv) if p.returncode == 0 else None

@pytest.fixture(scope='module')
def local_table(env, tmp_path_factory):
    p, df = table4(tmp_path_factory.mktemp('local'), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return df

def test_local2_table_equals_local(env, local_table, tmp_path):
    p, df = table4(tmp_path, ('executor', 'local:2'), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'KeyboardInterrupt' not in p.stderr  # the workers exit before the grid returns, not interrupted after it
    pd.testing.assert_frame_equal(df, local_table)
    out = streams(tmp_path/'out.ipynb')
    assert out.count('### fgdi scale: SMOKE') == 1 and '5 of 5 runs to train' in out  # the banner once per grid
    assert len(re.findall(r'run \w{10} \(protocol_2_M, seed 1\): done in', out)) == 5  # one line per run

def fgdi_grid(action, d:Path, *params, env):
    args = [FGDI, 'grid', action, str(NBS/'table4.ipynb'), '-o', str(d/f'{action}.ipynb')]
    for k, v in (*SMOKE_P2, ('runs_dir', d/'runs'), ('out_dir', d), *params): args += ['-p', k, str(v)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=d)

def job_ids(runs:Path) -> dict:
    return {p.parent.name: json.loads(p.read_text())['job_id'] for p in runs.glob('*/job.json')}

def slurm(*cmd, env) -> str:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

def sacct_states(ids, env) -> set:
    "The Slurm states of jobs `ids` as accounting has them (its first word: 'CANCELLED by 0' -> 'CANCELLED')."
    out = slurm('sacct', '-X', '-n', '-P', '-o', 'JobID,State', '-j', ','.join(ids), env=env)
    return {line.split('|')[1].split()[0] for line in out.splitlines()}

def wait_until(ok, what:str, timeout:float=180):
    t0 = time.time()
    while not ok():
        assert time.time() - t0 < timeout, f'gave up waiting for {what}'
        time.sleep(0.1)

def test_slurm_submit_cancel_fail_resubmit_collect(env, local_table, tmp_path):
    """Submit without waiting; a second submit adds nothing; `fgdi grid cancel` cancels the queued jobs (Slurm and
    `fgdi grid status` say so); a waiting run submits them again; a broken run is named, the others finish; only it is
    submitted again; `fgdi grid collect` gives the local table."""
    runs = tmp_path/'runs'
    row_b = make_config('paper', protocol=2, target='M', scale='smoke', use_initial=False, use_domain=True, use_apn=False)
    broken = plan_grid([row_b], runs_dir=runs)[0]
    (broken.dir/'config.json').mkdir(parents=True)  # Table IV's row B cannot write its run folder: its job fails

    p, _ = table4(tmp_path, *SLURM, ('wait', 'false'), HELD, env=env)
    assert p.returncode != 0 and 'GridStop' in p.stderr and '0 of 5 runs done' in p.stderr, p.stderr[-3000:]
    assert 'submitted 5 runs to Slurm' in streams(tmp_path/'out.ipynb')
    ids = job_ids(runs)
    assert len(ids) == 5
    again = fgdi_grid('submit', tmp_path, *SLURM, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'runs to Slurm' not in again.stdout and '5 runs already queued or running' in again.stdout
    assert job_ids(runs) == ids  # nothing submitted twice

    c = fgdi_grid('cancel', tmp_path, *SLURM, env=env)
    assert c.returncode == 0 and 'cancelled 5 jobs' in c.stdout, c.stdout[-3000:] + c.stderr[-3000:]
    wait_until(lambda: sacct_states(ids.values(), env) == {'CANCELLED'}, 'the jobs cancelled in accounting', timeout=30)
    assert not set(slurm('squeue', '-h', '-o', '%i', env=env).split()) & set(ids.values())
    status = fgdi_grid('status', tmp_path, *SLURM, env=env)
    assert status.returncode == 0, status.stderr[-3000:]
    for h, i in ids.items(): assert re.search(rf'{h} \(.*\): failed \(job {i}, CANCELLED', status.stdout), status.stdout
    assert 'failed runs are submitted again' in status.stdout

    p, _ = table4(tmp_path, *SLURM, env=env)  # submits the cancelled runs again and waits for them
    assert p.returncode != 0
    assert 'submitting again, to resume from their checkpoints' in streams(tmp_path/'out.ipynb')
    assert all(job_ids(runs)[h] != ids[h] for h in ids)
    ids = job_ids(runs)
    assert f'run {broken.name} FAILED: job {ids[broken.hash]}, state FAILED' in p.stderr, p.stderr[-3000:]
    assert 'IsADirectoryError' in p.stderr  # the last lines of its log
    assert all((runs/h/'result.json').exists() for h in ids if h != broken.hash)

    shutil.rmtree(broken.dir/'config.json')
    p, _ = table4(tmp_path, *SLURM, ('wait', 'false'), env=env)
    assert p.returncode != 0 and 'GridStop' in p.stderr and '4 of 5 runs done' in p.stderr, p.stderr[-3000:]
    out = streams(tmp_path/'out.ipynb')
    assert f'submitting again, to resume from their checkpoints: {broken.hash}' in out and 'submitted 1 runs' in out
    assert {h for h, i in job_ids(runs).items() if i != ids[h]} == {broken.hash}  # the done runs are never resubmitted
    wait_until(lambda: broken.done, 'the resubmitted run')
    assert not (tmp_path/'table4_protocol2.csv').exists()  # every call so far stopped before the table
    c = fgdi_grid('collect', tmp_path, *SLURM, env=env)
    assert c.returncode == 0 and 'every run of the grid is done' in c.stdout, c.stdout[-3000:] + c.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'table4_protocol2.csv'), local_table)

def _log(run_dir:Path) -> list:
    "A run's log without the timings."
    return [{k: v for k, v in json.loads(l).items() if k != 'seconds'} for l in (run_dir/'log.jsonl').read_text().splitlines()]

def test_preempted_job_resumes_from_its_checkpoint(env, tmp_path, monkeypatch):
    "Interrupt a job as a preemption does (submitit's job._interrupt()): it requeues, resumes and ends as if unstopped."
    for k in ('SLURM_CONF', 'FGDI_CACHE', 'OMP_NUM_THREADS'): monkeypatch.setenv(k, env[k])
    paper = RunConfig()  # twenty final-stage epochs at smoke scale, each checkpointed: time to interrupt one half-way
    cfg = replace(make_config('paper', protocol=2, target='M', scale='smoke'), epochs_final=20 * paper.epochs_final,
                  checkpoint_period=1)
    on_slurm = dict(executor='slurm', slurm=SMALL_JOBS)  # both jobs alike: one core, the same threads
    (r,) = plan_grid([cfg], runs_dir=tmp_path/'interrupted')
    with pytest.raises(GridStop): run_grid([cfg], runs_dir=tmp_path/'interrupted', wait=False, **on_slurm)
    job = recorded_job(r)
    log = r.dir/'log.jsonl'
    final_epochs = lambda: log.read_text().count('"stage": "final"') if log.exists() else 0  # lines: no JSON half-read
    wait_until(lambda: final_epochs() >= 2, 'two final-stage epochs')
    with pytest.raises(GridStop):  # the reference: the same run as a job never interrupted (its cache is written now)
        run_grid([cfg], runs_dir=tmp_path/'reference', wait=False, **on_slurm)
    assert not r.done
    job._interrupt()  # SIGTERM then USR2, as Slurm preempts: submitit checkpoints and requeues the job
    (res,) = run_grid([cfg], runs_dir=tmp_path/'interrupted', **on_slurm)
    (ref,) = run_grid([cfg], runs_dir=tmp_path/'reference', **on_slurm)
    out = job.paths.stdout.read_text()
    assert 'fgdi: job interrupted; requeued to resume run' in out, out
    resumed = re.findall(r"fgdi: continuing \S+ after stage 'final' epoch (\d+)", out)
    assert len(resumed) == 1 and 2 <= int(resumed[0]) < 20, out  # from its checkpoint, not from zero
    reference = recorded_job(plan_grid([cfg], runs_dir=tmp_path/'reference')[0])
    assert 'fgdi: job interrupted' not in reference.paths.stdout.read_text()
    assert res['targets'] == ref['targets'] and res['average'] == ref['average']  # bit for bit
    assert _log(r.dir) == _log(tmp_path/'reference'/r.hash)  # every epoch once, with the same losses
