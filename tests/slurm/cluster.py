"""A real one-node Slurm cluster (Debian's slurm-wlm 22.05) started for the tests, and stopped again by PID.

`one_node_slurm()` starts munged, MariaDB, slurmdbd, slurmctld and slurmd in a private folder with free ports, yields
the environment that points the Slurm commands at it (`SLURM_CONF`), and stops every daemon it started, even on
failure. It needs root and the packages `slurm-wlm munge slurmdbd mariadb-server` (`.ci/run` installs them).
Run it by hand to get a cluster to try things on: `python tests/slurm/cluster.py` (Ctrl-C stops it).
"""
import contextlib, getpass, os, shutil, socket, subprocess, tempfile, time
from pathlib import Path

NEEDED = ('munged', 'mariadbd', 'mariadb-install-db', 'slurmdbd', 'slurmctld', 'slurmd', 'sacctmgr', 'sinfo', 'sbatch')
CLUSTER = 'fgdi'

def why_not() -> str|None:
    "Why a Slurm cluster cannot be started here (None when it can)."
    if os.geteuid() != 0: return 'starting Slurm daemons needs root (munged, MariaDB and slurmd run as other users)'
    missing = [c for c in NEEDED if shutil.which(c) is None]
    if missing: return f"missing {', '.join(missing)}: apt-get install slurm-wlm munge slurmdbd mariadb-server"
    return None

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _write(path:Path, text:str, mode:int=0o644):
    path.write_text(text); path.chmod(mode)

def _daemon(name:str, cmd:list, d:Path, procs:dict, **kw):
    "Start daemon `name` in the foreground, its output in `d/<name>.out`."
    with open(d/f'{name}.out', 'w') as out: procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)

def _wait_for(what:str, ok, procs:dict, d:Path, timeout:float=60):
    "Poll `ok()` until true; fail with the daemons' last output if one died or `timeout` passed."
    t0 = time.time()
    while not ok():
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead or time.time() - t0 > timeout:
            logs = ''.join(f'\n--- {n}:\n' + ''.join((d/f'{n}.out').read_text().splitlines(True)[-5:]) for n in procs)
            raise RuntimeError(f"Slurm test cluster: {what} did not come up ({'died: ' + ', '.join(dead) if dead else 'timeout'}){logs}")
        time.sleep(0.2)

def _succeeds(*cmd, env=None) -> bool:
    return subprocess.run(cmd, env=env, capture_output=True).returncode == 0

def _start_munge(d:Path, procs:dict):
    "munged on its default socket (Slurm's clients of slurmdbd always use that one), logging into `d`."
    run = Path('/run/munge'); run.mkdir(exist_ok=True); shutil.chown(run, 'munge', 'munge'); run.chmod(0o755)
    if _succeeds('munge', '-n'): raise RuntimeError(f'a munged is already running on {run}: stop it first')
    log = d/'munged.log'; log.touch(); shutil.chown(log, 'munge', 'munge')
    _daemon('munged', ['runuser', '-u', 'munge', '--', 'munged', '-F', '--force', f'--log-file={log}'], d, procs)
    _wait_for('munged', lambda: _succeeds('munge', '-n'), procs, d)

def _start_mariadb(d:Path, procs:dict) -> tuple[Path, int]:
    db = d/'mysql'; db.mkdir(); shutil.chown(db, 'mysql', 'mysql')
    subprocess.run(['mariadb-install-db', '--no-defaults', '--user=mysql', f'--datadir={db}/data', '--skip-test-db'],
                   check=True, capture_output=True)
    sock, port = db/'mysqld.sock', _free_port()
    _daemon('mariadbd', ['mariadbd', '--no-defaults', '--user=mysql', f'--datadir={db}/data',
        f'--socket={sock}', f'--port={port}', '--bind-address=127.0.0.1', '--skip-name-resolve',
        f'--pid-file={db}/mysqld.pid', f'--log-error={db}/error.log'], d, procs)
    sql = ("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; "
           "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
    _wait_for('MariaDB', lambda: _succeeds('mariadb', '--no-defaults', '-S', str(sock), '-u', 'root', '-e', 'SELECT 1'), procs, d)
    subprocess.run(['mariadb', '--no-defaults', '-S', str(sock), '-u', 'root', '-e', sql], check=True)
    return sock, port

def _node_line() -> str:
    "This machine's NodeName line as slurmd detects it (its RealMemory never exceeds the machine's)."
    return subprocess.run(['slurmd', '-C'], capture_output=True, text=True, check=True).stdout.splitlines()[0]

def _write_confs(d:Path, db_port:int) -> dict:
    host, ports = socket.gethostname().split('.')[0], dict(ctld=_free_port(), slurmd=_free_port(), dbd=_free_port())
    auth = 'AuthType=auth/munge\nAuthInfo=cred_expire=5\n'
    _write(d/'slurmdbd.conf', auth + f"""DbdHost=localhost
DbdPort={ports['dbd']}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile={d}/slurmdbd.pid
LogFile={d}/slurmdbd.log
""", 0o600)
    _write(d/'slurm.conf', auth + f"""ClusterName={CLUSTER}
SlurmctldHost={host}
SlurmctldPort={ports['ctld']}
SlurmdPort={ports['slurmd']}
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={ports['dbd']}
SchedulerParameters=bf_interval=1,sched_interval=2
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
{_node_line()} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return ports

def _start_slurm(d:Path, env:dict, procs:dict):
    (d/'state').mkdir(); (d/'spool').mkdir()
    _daemon('slurmdbd', ['slurmdbd', '-D'], d, procs, env=env)
    _wait_for('slurmdbd', lambda: _succeeds('sacctmgr', '-n', 'list', 'cluster', env=env), procs, d)
    subprocess.run(['sacctmgr', '-i', 'add', 'cluster', CLUSTER], env=env, check=True, capture_output=True)
    _daemon('slurmctld', ['slurmctld', '-D', '-i'], d, procs, env=env)
    _wait_for('slurmctld', lambda: _succeeds('scontrol', 'ping', env=env), procs, d)
    _daemon('slurmd', ['slurmd', '-D'], d, procs, env=env)
    idle = lambda: 'idle' in subprocess.run(['sinfo', '-h', '-o', '%t'], env=env, capture_output=True, text=True).stdout
    _wait_for('the node (idle in sinfo)', idle, procs, d)

def _end_jobs(env:dict, timeout:float=20):
    "Kill the running jobs and cancel the queued ones: a job's slurmstepd would outlive the daemons, and its processes."
    me = f'--user={getpass.getuser()}'
    subprocess.run(['scancel', '--full', '--signal=KILL', '--state=RUNNING', me], env=env, capture_output=True)
    subprocess.run(['scancel', me], env=env, capture_output=True)
    t0 = time.time()
    while subprocess.run(['squeue', '-h'], env=env, capture_output=True, text=True).stdout.strip():
        if time.time() - t0 > timeout: break
        time.sleep(0.2)

def _stop(procs:dict):
    "Stop the daemons by PID, newest first: SIGTERM, then SIGKILL after 10 s."
    for name, p in reversed(procs.items()):
        if p.poll() is None: p.terminate()
        try: p.wait(10)
        except subprocess.TimeoutExpired: p.kill(); p.wait()

@contextlib.contextmanager
def one_node_slurm():
    "Start a one-node Slurm with accounting; yield (environment with SLURM_CONF, its folder); stop it all at the end."
    if why_not(): raise RuntimeError(why_not())
    d = Path(tempfile.mkdtemp(prefix='fgdi-slurm-')); d.chmod(0o755)  # munge and mysql must reach their folders
    procs, env = {}, None
    try:
        _start_munge(d, procs)
        _, db_port = _start_mariadb(d, procs)
        _write_confs(d, db_port)
        env = {**os.environ, 'SLURM_CONF': str(d/'slurm.conf')}
        _start_slurm(d, env, procs)
        yield env, d
    finally:
        if env and 'slurmd' in procs: _end_jobs(env)
        _stop(procs)
        shutil.rmtree(d, ignore_errors=True)

if __name__ == '__main__':
    with one_node_slurm() as (env, d):
        print(f"Slurm is up: export SLURM_CONF={env['SLURM_CONF']}  (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True: time.sleep(3600)
