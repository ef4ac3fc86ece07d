"""Setup under concurrency: two processes that prepare the same smoke world at once on a cold cache (as two runs
of `executor='local:2'` do) write it once; the second waits for the first (`RunLock` on `<cache>/setup`), then reads."""
import multiprocessing as mp, os
from pathlib import Path

def prepare(cache:str, start):
    "In a fresh process: prepare the smoke world in `cache` once `start` lets every process go; log each world write."
    os.environ['FGDI_CACHE'] = cache
    import fgdi.pretrain
    from fgdi.config import RunConfig
    from fgdi.experiment import at_scale, prepare_scale
    write_world = fgdi.pretrain.write_world
    def logged(*args, **kw):
        with open(Path(cache)/'writes.log', 'a') as f: f.write(f'{os.getpid()}\n')
        return write_world(*args, **kw)
    fgdi.pretrain.write_world = logged
    cfg = at_scale(RunConfig(protocol=2, target='M'), 'smoke')
    start.wait(timeout=120)  # both processes have imported fgdi: they ask for the world at the same moment
    prepare_scale(cfg, progress=False)

def test_two_processes_write_the_world_once(tmp_path, capfd):
    spawn = mp.get_context('spawn')
    start = spawn.Barrier(2)
    procs = [spawn.Process(target=prepare, args=(str(tmp_path), start)) for _ in range(2)]
    for p in procs: p.start()
    for p in procs: p.join(timeout=180)
    said = capfd.readouterr()
    assert [p.exitcode for p in procs] == [0, 0], said.err[-3000:]
    writers = (tmp_path/'writes.log').read_text().split()
    assert len(writers) == 1, f'the world was written {len(writers)} times, by pids {writers}'
    waiter = next(p.pid for p in procs if str(p.pid) not in writers)
    assert f'fgdi: waiting for pid {writers[0]} ' in said.out, said.out  # the other one waited for the writer
    (world,) = (tmp_path/'worlds').iterdir()
    assert (world/'manifest.json').exists() and not list((tmp_path/'worlds').glob('*.tmp*'))
    assert not (tmp_path/'setup'/'lock').exists(), f'pid {waiter} or {writers[0]} left the setup lock behind'
