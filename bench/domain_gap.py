"""Does the synthetic world have a real domain gap? (a script, not a test)

Trains the mini baseline (switches A, B, C off) twice and evaluates both on the synthetic Market test set:
  in-domain:    trained on Market's own training split,
  cross-domain: Protocol-2 -> M (trained on CUHK03, CUHK-SYSU and MSMT17, never seeing Market's style).
A large in-domain advantage, despite the cross-domain run having several times more training identities, means
the world's domains differ in ways that a re-ID model must generalise across.

  python bench/domain_gap.py [--runs-dir /tmp/fgdi-gap]
"""
import argparse, json, time
from pathlib import Path
from fgdi.config import make_config
from fgdi.data import open_dataset
from fgdi.protocols import Protocol, load_protocol, relabel
from fgdi.experiment import at_scale, prepare_scale, train_and_evaluate

def market_only(cfg) -> Protocol:
    "Train on Market's training split, test on Market."
    m = open_dataset('Market', cfg.data_root, cfg)
    train, pids, cams, doms = relabel(m.train)
    return Protocol('Market->Market', ('Market',), ('Market',), False, train, {'Market': m.query}, {'Market': m.gallery},
                    pids, cams, doms, len(pids))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs-dir', default='/tmp/fgdi-gap'); ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    cfg = at_scale(make_config(protocol=2, target='M', use_initial=False, use_domain=False, use_apn=False, seed=a.seed), 'mini')
    prepare_scale(cfg)
    rows = {}
    for name, p in (('in-domain (Market -> Market)', market_only(cfg)), ('cross-domain (Protocol-2 -> M)', load_protocol(2, 'M', cfg.data_root, cfg))):
        t0 = time.time()
        res = train_and_evaluate(cfg, p, Path(a.runs_dir)/name.split()[0], progress=False)
        ids = len({it.pid for it in p.train})
        rows[name] = dict(train_images=len(p.train), train_ids=ids, mAP=round(100 * res['average']['mAP'], 1),
                          R1=round(100 * res['average']['R1'], 1), seconds=round(time.time() - t0))
        print(name, rows[name], flush=True)
    print(json.dumps(rows, indent=1))

if __name__ == '__main__': main()
