"A run's identity must not depend on the interpreter: the config hash is the same in a fresh process."
import os, subprocess, sys
from fgdi.config import RunConfig, make_config, config_hash

def _hash_in_subprocess(expr):
    code = f"from fgdi.config import *; print(config_hash({expr}))"
    env = {**os.environ, 'PYTHONHASHSEED': '123'}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, env=env).stdout.strip()

def test_hash_is_stable_across_processes():
    assert _hash_in_subprocess("RunConfig()") == config_hash(RunConfig())
    assert _hash_in_subprocess("make_config('code', protocol=2, target='M')") == config_hash(make_config('code', protocol=2, target='M'))

def test_variants_differ():
    assert config_hash(make_config('paper')) != config_hash(make_config('code'))
