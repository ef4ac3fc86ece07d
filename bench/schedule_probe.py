"""The world report's cross-domain runs at another final-stage schedule (a probe, not a test).

Trains (or reads back from --runs-dir) the four cross-domain kinds of `fgdi.world` (the baseline, the null world, the
oracle and the positive control) with --epochs final-stage epochs at --scale for every seed, and summarises them as
the world report does: mAP per target, retention, the controls' paired differences and the calibration checks, and
the baseline's paired gain over the report's own cross-domain runs (what the other schedule changes). The in-domain
runs do not depend on the cross-domain schedule, so their per-seed mAPs come from an existing report (--report) of
the same world, scale and seeds; the probe stops if the report was measured on anything else.

  python bench/schedule_probe.py --epochs 16 --executor local:2 --json probe16.json   # ~90 min on 2 cores (80 measured at 14)
  python bench/schedule_probe.py --epochs 14 ...   # the preset: the report's own runs (same hashes)
"""
import argparse, json, time
import numpy as np
from pathlib import Path
from fgdi.config import TARGETS
from fgdi.synth import world_id
from fgdi.world import curve_config, paired, summarise, train_maps

CROSS = ('cross_domain', 'null_cross_domain', 'oracle', 'positive')  # the kinds whose runs the schedule changes

def in_domain_maps(report:dict, scale:str, seeds:list, targets) -> dict:
    "`{(kind, target): [mAP per seed]}` of the report's in-domain runs, after checking it measured this world."
    want = dict(scale=scale, seeds=seeds, world=world_id(scale), null=world_id(scale, 'shared'))
    got = dict(scale=report['scale'], seeds=report['seeds'], world=report['world']['id'],
               null=report['world']['null_id'])
    if got != want:
        raise SystemExit(f"the report was measured on {got}, this probe needs {want}: pass --report a "
                         f"world_report.json of this world (papermill nbs/world.ipynb out.ipynb -p scale {scale} ...)")
    null = report['controls']['null']['in_domain']
    return {**{('in_domain', t): report['in_domain'][t]['values'] for t in targets},
            **{('null_in_domain', t): null[t]['values'] for t in targets}}

def probe(epochs:int, scale:str, seeds:list, targets, runs_dir:str, executor:str) -> tuple[dict, dict]:
    "`{(kind, target): [mAP per seed]}` of the cross-domain kinds at `epochs`, and what it cost."
    cfgs = {(k, t): curve_config(t, k, epochs, scale)[0] for k in CROSS for t in targets}
    t0 = time.time()
    maps, _, trained = train_maps(cfgs, seeds, runs_dir, executor)
    return maps, dict(seconds=round(time.time() - t0, 1), trained=trained, total=len(cfgs) * len(seeds),
                      epochs_final=cfgs['cross_domain', targets[0]].epochs_final)

def gain_over(report:dict, maps:dict, targets) -> dict:
    "The probed baseline's paired difference (by seed) to the report's cross-domain baseline, per target and mean."
    ours = np.array([maps['cross_domain', t] for t in targets])
    theirs = np.array([report['cross_domain'][t]['values'] for t in targets])
    return {t: paired(a, b) for t, a, b in zip(targets, ours, theirs)} | dict(mean=paired(ours.mean(0), theirs.mean(0)))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs', type=int, required=True, help='final-stage epochs of the cross-domain runs at --scale')
    ap.add_argument('--scale', default='mini', choices=('mini', 'smoke'))
    ap.add_argument('--seeds', default='1,2,3')
    ap.add_argument('--report', default='examples/world_report.json', help='world_report.json with the in-domain runs')
    ap.add_argument('--runs-dir', default='runs')
    ap.add_argument('--executor', default='local', help="'local' or 'local:N'")
    ap.add_argument('--json', help='write the summary here')
    a = ap.parse_args(argv)
    seeds, targets = [int(s) for s in a.seeds.split(',')], list(TARGETS)
    report = json.loads(Path(a.report).read_text())
    within = in_domain_maps(report, a.scale, seeds, targets)
    cross, cost = probe(a.epochs, a.scale, seeds, targets, a.runs_dir, a.executor)
    rep = summarise(within | cross, targets)
    out = dict(world=world_id(a.scale), scale=a.scale, seeds=seeds, in_domain_from=a.report, **cost, **rep,
               gain_over_report=gain_over(report, cross, targets))
    for name, c in rep['checks'].items(): print(f"{name:28} {str(c['value']):24} {c['bound']:14} {c['ok']}")
    g = out['gain_over_report']['mean']
    ci = f"[{g['low']:+.2f}, {g['high']:+.2f}]" if g['low'] is not None else '(one seed: no interval)'
    print(f"baseline gain over the report's schedule: {g['mean']:+.2f} {ci} mAP")
    print(json.dumps({k: out[k] for k in ('world', 'epochs_final', 'seconds', 'trained', 'total')}))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1))
    return out

if __name__ == '__main__': main()
