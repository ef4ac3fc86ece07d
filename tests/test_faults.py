"""Faults a run must survive (issue 16): SIGKILL at chosen points, two processes on one config, a read-only runs
folder, a `result.json` or checkpoint left damaged, a checkpoint whose pickle would run code. Smoke scale, through the
`fgdi` command as a user runs it. The kill points come from the test hook `fgdi.train.fault_point`: with
`FGDI_FAULT=<point>:<n>` a process kills itself with SIGKILL the n-th time it reaches that point."""
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from test_experiment import FGDI, fgdi, _result, env  # noqa: F401  (env is a fixture: a private cache)

ARGS = ('run', '--protocol', '2', '--target', 'M', '--scale', 'smoke')

def run_in(runs, env, fault=None, *more):
    "`fgdi run` of the smoke config in runs folder `runs`, killed at `fault` if given."
    return fgdi(*ARGS, *more, '--runs-dir', str(runs), env=env if fault is None else {**env, 'FGDI_FAULT': fault})

def leftovers(runs) -> list:
    "Locks and temporary files left in `runs`: none once a run has finished."
    return sorted(str(p.relative_to(runs)) for p in Path(runs).rglob('*') if p.name.startswith(('lock', '.')))

@pytest.fixture(scope='module')
def straight(env, tmp_path_factory):
    "A run that was never interrupted: the numbers every case must reproduce, and a finished folder to damage."
    runs = tmp_path_factory.mktemp('straight')
    p = run_in(runs, env)
    assert p.returncode == 0, p.stderr
    assert leftovers(runs) == []
    return runs

def copy_of(straight, tmp_path) -> tuple[Path, Path]:
    "A copy of the finished runs folder and its run folder."
    runs = shutil.copytree(straight, tmp_path/'runs')
    (d,) = [p for p in runs.iterdir() if p.name != '_stages']
    return runs, d

KILLS = [  # each process is killed at its point; the next one resumes what the one before left
    ('step:3', 'inside the initial stage, after its third optimiser step (nothing saved yet)'),
    ('epoch:1', 'after the first epoch is logged, before any checkpoint'),
    ('stage:1', 'at the stage boundary after the initial stage'),
    ('write:last.pt:1', 'while the checkpoint of the id_tokens stage is being written'),
    ('epoch:2', 'after the domain_tokens epoch is logged, before its checkpoint'),
    ('stage:1', 'at the boundary between the shared stages and the final stage'),
    ('step:4', 'inside the final stage'),
    ('write:result.json:1', 'while result.json is being written')]

def test_killed_anywhere_resumes_to_the_same_numbers(tmp_path, env, straight):
    "SIGKILL at each point in turn, then a rerun: the same metrics and log as a run never stopped, bit for bit."
    runs, outputs = tmp_path/'runs', []
    for fault, where in KILLS:
        p = run_in(runs, env, fault)
        assert p.returncode == -signal.SIGKILL, f'FGDI_FAULT={fault} ({where}) did not kill it:\n{p.stderr[-3000:]}'
        assert not list(runs.glob('*/result.json')), where
        outputs.append(p.stdout)
        if fault == 'write:last.pt:1': assert list(runs.glob('_stages/*/ckpt/.last.pt.*.tmp')), 'no half a checkpoint'
    assert outputs[1].count('fgdi: took over') == 2, outputs[1]  # the run folder and the shared stages of the dead run
    assert list(runs.glob('*/.result.json.*.tmp')), 'no half-written result.json'
    resumed = run_in(runs, env)
    assert resumed.returncode == 0, resumed.stderr
    assert _result(runs) == _result(straight)
    assert leftovers(runs) == [], 'locks or temporary files of the killed processes are left'

GATED = """
import sys, time
from pathlib import Path
import fgdi.experiment as ex
from fgdi.cli import main
gate, train = Path(sys.argv[1]), ex.train_and_evaluate
def gated(*a, **kw):  # the holder of the run's lock trains only once the test has seen the other process wait
    print('fgdi-test: training', flush=True)
    while not gate.exists(): time.sleep(0.05)
    return train(*a, **kw)
ex.train_and_evaluate = gated
main(sys.argv[2:])
"""

def test_two_processes_on_one_config_train_once(tmp_path, env, straight):
    "Started together on one config: one trains, the other waits for it, says so, and reads its result."
    gate, runs, outs = tmp_path/'gate', tmp_path/'runs', [tmp_path/'a.txt', tmp_path/'b.txt']
    cmd = [sys.executable, '-c', GATED, str(gate), *ARGS, '--runs-dir', str(runs)]
    procs = [subprocess.Popen(cmd, env=env, stdout=o.open('w'), stderr=subprocess.STDOUT) for o in outs]
    said = lambda: [o.read_text() for o in outs]
    deadline = time.time() + 180
    while not all(any(k in s for s in said()) for k in ('fgdi-test: training', 'fgdi: waiting for')):
        assert time.time() < deadline and all(p.poll() is None for p in procs), said()
        time.sleep(0.1)
    gate.touch()
    assert [p.wait(timeout=180) for p in procs] == [0, 0], said()
    trained = ['fgdi-test: training' in s for s in said()]
    assert sorted(trained) == [False, True], said()
    trainer, waiter = (procs[0], said()[1]) if trained[0] else (procs[1], said()[0])
    assert f'fgdi: waiting for pid {trainer.pid} ' in waiter and '### fgdi scale' not in waiter, waiter
    tables = [s[s.rindex('target '):] for s in said()]
    assert tables[0] == tables[1] and 'average' in tables[0], tables  # both report the same numbers
    assert _result(runs) == _result(straight) and leftovers(runs) == []

def as_user() -> list:
    "The command prefix under which file modes hold: root ignores them, so drop the capabilities that let it."
    if os.geteuid() != 0: return []
    if not shutil.which('setpriv'): pytest.skip('running as root without setpriv: cannot make a folder read-only')
    return ['setpriv', '--bounding-set=-dac_override,-dac_read_search']

def test_read_only_runs_folder(tmp_path, env, straight):
    "A read-only runs folder: its finished results are read, a run that must train is one clear error, nothing changes."
    drop = as_user()
    runs, _ = copy_of(straight, tmp_path)
    before = sorted(p.relative_to(runs) for p in runs.rglob('*'))
    runs.chmod(0o555)
    cmd = [*drop, FGDI, 'run', '--protocol', '2', '--target', 'all', '--scale', 'smoke', '--runs-dir', str(runs)]
    try: p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally: runs.chmod(0o755)
    assert p.stdout.count('average') == 1, p.stdout  # target M: finished, read back
    assert p.returncode == 1 and 'Traceback' not in p.stderr, p.stderr  # target MS: would train
    assert f'fgdi: error: cannot write in {runs} (Permission denied): make it writable' in p.stderr, p.stderr
    assert '--runs-dir' in p.stderr
    assert sorted(p.relative_to(runs) for p in runs.rglob('*')) == before

def test_read_only_cache(tmp_path, env, straight):
    "A read-only FGDI_CACHE (every folder in it): a run that must train is one clear error naming it; nothing changes."
    drop, cache = as_user(), Path(env['FGDI_CACHE'])
    folders = [cache, *(p for p in cache.rglob('*') if p.is_dir())]
    before = sorted(p.relative_to(cache) for p in cache.rglob('*'))
    for d in folders: d.chmod(0o555)
    try: p = subprocess.run([*drop, FGDI, *ARGS, '--runs-dir', str(tmp_path/'runs')], env=env, capture_output=True,
                            text=True)
    finally:
        for d in folders: d.chmod(0o755)
    assert p.returncode == 1 and 'Traceback' not in p.stderr, p.stderr
    assert f'fgdi: error: cannot write in {cache/"setup"} (Permission denied): make it writable' in p.stderr, p.stderr
    assert 'point FGDI_CACHE at a writable folder' in p.stderr, p.stderr
    assert sorted(p.relative_to(cache) for p in cache.rglob('*')) == before

def test_truncated_result_is_redone(tmp_path, env, straight):
    "Half a result.json (a copy cut short): not read as a result; the run is redone from its checkpoint, saying so."
    runs, d = copy_of(straight, tmp_path)
    text = (d/'result.json').read_text()
    (d/'result.json').write_text(text[:len(text) // 2])
    p = run_in(runs, env)
    assert p.returncode == 0, p.stderr
    assert f'fgdi: {d/"result.json"} is unreadable' in p.stdout and 'is redone' in p.stdout, p.stdout
    assert f"continuing {d} after stage 'final'" in p.stdout  # nothing trained again
    assert _result(runs) == _result(straight)

@pytest.mark.parametrize('where', ['run', 'shared stages'])
def test_truncated_checkpoint_is_set_aside(tmp_path, env, straight, where):
    "A checkpoint cut short: one message, set aside; the run goes on from the previous good state to the same numbers."
    runs, d = copy_of(straight, tmp_path)
    (d/'result.json').unlink()
    if where == 'run': ckpt = d/'ckpt'/'last.pt'
    else:
        (d/'ckpt'/'last.pt').unlink()  # no progress of its own: the run starts from the shared stages
        (ckpt,) = runs.glob('_stages/*/ckpt/last.pt')
    ckpt.write_bytes(ckpt.read_bytes()[:ckpt.stat().st_size // 2])
    p = run_in(runs, env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count('is unreadable') == 1 and f'{ckpt} is unreadable' in p.stdout, p.stdout
    assert 'set aside as last.pt.corrupt' in p.stdout and ckpt.with_name('last.pt.corrupt').exists()
    if where == 'run': assert f"continuing {d} after stage 'domain_tokens'" in p.stdout, p.stdout  # shared stages
    else: assert 'continuing' not in p.stdout.split('fgdi: the stages before')[0], p.stdout  # retrained from scratch
    assert _result(runs) == _result(straight)

class RunsCode:
    "Unpickled, this calls `open(marker, 'w')`: a hostile file could call any function there."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (self.marker, 'w'))

def test_checkpoint_that_would_run_code_is_refused(tmp_path, env, straight):
    "A checkpoint whose pickle calls a function: refused with one clear error, before anything runs; nothing changed."
    runs, d = copy_of(straight, tmp_path)
    (d/'result.json').unlink()
    marker, ckpt = tmp_path/'code-ran', d/'ckpt'/'last.pt'
    torch.save({'stage': 'final', 'epoch': 1, 'model': RunsCode(str(marker))}, ckpt)
    before = ckpt.read_bytes()
    p = run_in(runs, env)
    assert p.returncode == 1 and 'Traceback' not in p.stderr, p.stderr
    assert f'fgdi: error: {ckpt} is not an fgdi checkpoint: loading it would run code' in p.stderr, p.stderr
    assert '(io.open)' in p.stderr and 'delete it' in p.stderr
    assert not marker.exists() and ckpt.read_bytes() == before
