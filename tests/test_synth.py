"The synthetic world: real layouts and names, counts equal to `expected_counts`, determinism, side files."
import hashlib, json, re
from pathlib import Path
import pytest
import scipy.io
from fgdi.synth import write_world, expected_counts, plan_world, FOLDERS, DATASETS, DISTRACTOR

IMAGE_EXT = {'.jpg', '.jpeg', '.png', '.bmp'}
NAME_RULES = {  # every image file of a dataset must match its release's naming rule
    'Market1501': r'Market-1501-v15\.09\.15/(bounding_box_train|query|bounding_box_test)/(-1|\d{4})_c[1-6]s[1-6]_\d{6}_\d{2}\.jpg',
    'MSMT17': r'MSMT17_V1/(train|test)/(\d{4})/\2_\d{3}_(0[1-9]|1[0-5])_\d{4}(morning|noon|afternoon)_\d{4}_\d\.jpg',
    'CUHK03': r'cuhk03/images_(labeled|detected)/[1-5]_\d{3}_[12]_(0[1-9]|10)\.png',
    'CUHK02': r'cuhk02/P[1-5]/cam[12]/\d{3}_[1-4]\.png',
    'CUHK-SYSU': r'cuhk_sysu/cropped_images/p\d+_s\d+\.jpg',
    'PRID': r'PRID/single_shot/cam_[ab]/person_\d{4}\.png',
    'GRID': r'underground_reid/(probe|gallery)/\d{4}_[1-8]_\d{5}_\d+_\d+_\d+_\d+\.jpeg',
    'VIPeR': r'VIPeR/cam_[ab]/\d{3}_(0|45|90|135|180)\.bmp',
    'iLIDS': r'iLIDS/Persons/\d{7}\.jpg'}

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth') / 'smoke'
    write_world(root, 'smoke', seed=0, workers=1)
    return root

def _images(root, folder): return sorted(p for p in (root / folder).rglob('*') if p.suffix in IMAGE_EXT)
def _c(items, pid_of): return dict(images=len(items), ids=len({pid_of(i) for i in items}))

# ---- independent readers, following the authors' datasets/*.py (papers/clip-fgdi/code-vs-paper.md §6)
def read_market(root):
    base, out = root / FOLDERS['Market1501'], {}
    pid = lambda f: int(re.search(r'([-\d]+)_c(\d)', f.name).group(1))
    for part, folder in (('train', 'bounding_box_train'), ('query', 'query'), ('gallery', 'bounding_box_test')):
        files = sorted((base / folder).glob('*.jpg'))
        out[part] = _c([f for f in files if pid(f) != -1], pid)
        if part == 'gallery': out['junk'] = dict(images=sum(pid(f) == -1 for f in files), ids=0)
    files = _images(root, FOLDERS['Market1501'])
    out['files'] = dict(images=len(files), ids=len({pid(f) for f in files} - {0, -1}))
    return out

def read_msmt(root):
    base, out = root / FOLDERS['MSMT17'], {}
    for part in ('train', 'val', 'query', 'gallery'):
        lines = [l.split() for l in (base / f'list_{part}.txt').read_text().splitlines()]
        for rel, pid in lines:
            assert (base / ('train' if part in ('train', 'val') else 'test') / rel).is_file(), rel
            assert 0 <= int(rel.split('_')[2]) - 1 < 15 and rel.startswith(f'{int(pid):04d}/')
        out[part] = _c(lines, lambda l: int(l[1]))
    listed = {l.split()[0] for part in ('train', 'val') for l in (base / f'list_{part}.txt').read_text().splitlines()}
    assert listed == {str(p.relative_to(base / 'train')) for p in _images(root, f"{FOLDERS['MSMT17']}/train")}
    out['files'] = dict(images=len(_images(root, FOLDERS['MSMT17'])), ids=out['train']['ids'] + out['query']['ids'])
    return out

def read_cuhk03(root, kind='labeled'):
    (split,) = json.loads((root / f'cuhk03/splits_new_{kind}.json').read_text())
    out = {}
    for part in ('train', 'query', 'gallery'):
        items = split[part]
        for rel, pid, camid, dom in items:
            assert (root / rel).is_file() and dom == 'cuhk03' and camid == int(Path(rel).name.split('_')[2]) - 1
        out[part] = _c(items, lambda i: i[1])
        assert split[f'num_{part}_imgs'] == out[part]['images'] and split[f'num_{part}_pids'] == out[part]['ids']
    files = _images(root, f'cuhk03/images_{kind}')
    out['files'] = _c(files, lambda f: tuple(f.name.split('_')[:2]))
    return out

def read_cuhk02(root):
    base, pid = root / 'cuhk02', lambda f: (f.parent.parent.name, int(f.name.split('_')[0]))
    train = [f for k in range(1, 5) for f in sorted((base / f'P{k}').rglob('*.png'))]
    return dict(train=_c(train, pid), query=_c(sorted((base / 'P5/cam1').glob('*.png')), pid),
                gallery=_c(sorted((base / 'P5/cam2').glob('*.png')), pid), files=_c(_images(root, 'cuhk02'), pid))

def read_sysu(root):
    files = _images(root, 'cuhk_sysu/cropped_images')
    c = _c(files, lambda f: int(re.search(r'p([-\d]+)_s(\d)', f.name).group(1)) - 1)
    return dict(train=c, files=c)

def read_prid(root, split_id=9):
    base = root / 'PRID'
    split = json.loads((base / 'splits_single_shot.json').read_text())[split_id]
    pid = lambda f: int(f.stem.split('_')[1])
    a, b = sorted((base / 'single_shot/cam_a').glob('*.png')), sorted((base / 'single_shot/cam_b').glob('*.png'))
    shared = set(split['train']) | set(split['test'])
    assert shared <= {pid(f) for f in a} & {pid(f) for f in b}
    return dict(train=_c([f for f in a + b if pid(f) in split['train']], pid),
                query=_c([f for f in a if pid(f) in split['test']], pid),
                gallery=_c([f for f in b if pid(f) in split['test'] or pid(f) not in shared], pid),
                files=dict(images=len(a) + len(b), ids=len({('a' if f in a else 'b', pid(f)) if pid(f) not in shared else pid(f) for f in a + b})))

def read_grid(root, split_id=9):
    base = root / 'underground_reid'
    train = scipy.io.loadmat(base / 'features_and_partitions.mat')['trainIdxAll'][0][split_id][0][0][2][0].tolist()  # torchreid's access
    pid = lambda f: int(f.name.split('_')[0])
    probe, gallery = sorted((base / 'probe').glob('*.jpeg')), sorted((base / 'gallery').glob('*.jpeg'))
    for f in probe + gallery: assert 1 <= int(f.name.split('_')[1]) <= 8
    return dict(train=_c([f for f in probe + gallery if pid(f) in train], pid), query=_c([f for f in probe if pid(f) not in train], pid),
                gallery=_c([f for f in gallery if pid(f) not in train], pid),
                files=dict(images=len(probe) + len(gallery), ids=len({pid(f) for f in probe + gallery} - {0})))

def read_viper(root, split_id=9):
    split = json.loads((root / 'VIPeR/splits.json').read_text())[split_id]
    for part in ('train', 'query', 'gallery'):
        for rel, pid, cam in split[part]: assert (root / rel).is_file() and f'cam_{"ab"[cam]}' in rel
    files = _images(root, 'VIPeR')
    return dict(**{part: _c(split[part], lambda i: i[1]) for part in ('train', 'query', 'gallery')},
                files=_c(files, lambda f: f.name.split('_')[0]))

def read_ilids(root, split_id=9):
    split = json.loads((root / 'iLIDS/splits.json').read_text())[split_id]
    for name in split['train'] + split['query'] + split['gallery']: assert (root / 'iLIDS/Persons' / name).is_file()
    for q, g in zip(split['query'], split['gallery']): assert q[:4] == g[:4] and q[4:7] != g[4:7]   # camid = sequence − 1 differs
    return dict(**{part: _c(split[part], lambda n: n[:4]) for part in ('train', 'query', 'gallery')},
                files=_c(_images(root, 'iLIDS'), lambda f: f.name[:4]))

READERS = {'Market1501': read_market, 'MSMT17': read_msmt, 'CUHK03': read_cuhk03, 'CUHK02': read_cuhk02, 'CUHK-SYSU': read_sysu,
           'PRID': read_prid, 'GRID': read_grid, 'VIPeR': read_viper, 'iLIDS': read_ilids}

@pytest.mark.parametrize('name', DATASETS)
def test_counts_equal_expected(world, name):
    assert READERS[name](world) == expected_counts('smoke')[name]

def test_cuhk03_detected_has_the_same_counts(world):
    assert read_cuhk03(world, 'detected') == expected_counts('smoke')['CUHK03']

@pytest.mark.parametrize('name', DATASETS)
def test_names_follow_the_release(world, name):
    files = _images(world, FOLDERS[name])
    assert files, name
    bad = [str(f.relative_to(world)) for f in files if not re.fullmatch(NAME_RULES[name], str(f.relative_to(world)))]
    assert not bad, bad[:3]

def test_market_regex_and_cameras(world):
    "The released code's regex `([-\\d]+)_c(\\d)` on every Market path; distractors and junk only in the gallery."
    for f in _images(world, FOLDERS['Market1501']):
        pid, cam = map(int, re.search(r'([-\d]+)_c(\d)', str(f)).groups())
        assert 1 <= cam <= 6 and (pid > 0 or f.parent.name == 'bounding_box_test')

def test_cuhk03_mat_agrees_with_json(world):
    for kind in ('labeled', 'detected'):
        m = scipy.io.loadmat(world / f'cuhk03/cuhk03_new_protocol_config_{kind}.mat')
        (split,) = json.loads((world / f'cuhk03/splits_new_{kind}.json').read_text())
        filelist, labels, cams = m['filelist'].flatten(), m['labels'].flatten(), m['camId'].flatten()
        for part in ('train', 'query', 'gallery'):
            idx = m[f'{part}_idx'].flatten() - 1               # 1-based in the .mat (torchreid subtracts 1)
            assert [f'cuhk03/images_{kind}/{filelist[i][0]}' for i in idx] == [it[0] for it in split[part]]
            assert [int(c) - 1 for c in cams[idx]] == [it[2] for it in split[part]]
            if part != 'train': assert [int(l) for l in labels[idx]] == [it[1] for it in split[part]]
        assert not set(labels[m['train_idx'].flatten() - 1]) & set(labels[m['query_idx'].flatten() - 1])

def test_every_query_has_a_cross_camera_match(world):
    "Market and MSMT17 queries: some gallery image of the same identity from another camera."
    base = world / FOLDERS['Market1501']
    key = lambda f: tuple(map(int, re.search(r'([-\d]+)_c(\d)', f.name).groups()))
    gallery = {key(f) for f in (base / 'bounding_box_test').glob('*.jpg')}
    for f in (base / 'query').glob('*.jpg'):
        pid, cam = key(f)
        assert any(p == pid and c != cam for p, c in gallery)
    ms = world / FOLDERS['MSMT17']
    read = lambda part: [(int(l.split()[1]), int(l.split('_')[2])) for l in (ms / f'list_{part}.txt').read_text().splitlines()]
    msg = set(read('gallery'))
    for pid, cam in read('query'): assert any(p == pid and c != cam for p, c in msg)

def test_pretrain_captions(world):
    lines = [json.loads(l) for l in (world / 'pretrain/captions.jsonl').read_text().splitlines()]
    assert lines and len(lines) == len(list((world / 'pretrain/images').glob('*.png')))
    for rec in lines:
        assert (world / 'pretrain' / rec['image']).is_file() and rec['caption'] and rec['attributes']['upper'] in rec['caption']

def test_manifest(world):
    m = json.loads((world / 'manifest.json').read_text())
    assert (m['scale'], m['seed'], m['counts']) == ('smoke', 0, expected_counts('smoke'))

def _digest(root):
    files = sorted(p for p in root.rglob('*') if p.is_file() and p.name != 'manifest.json')
    h = hashlib.sha256()
    for f in files: h.update(str(f.relative_to(root)).encode()); h.update(f.read_bytes())
    return h.hexdigest()

def test_deterministic_with_any_number_of_workers(world, tmp_path):
    "Same seed: the same bytes, whether drawn in one process or in a pool of two."
    write_world(tmp_path / 'again', 'smoke', seed=0, workers=2)
    assert _digest(tmp_path / 'again') == _digest(world)

def test_other_seed_other_world(world, tmp_path):
    write_world(tmp_path / 'other', 'smoke', seed=1)
    assert _digest(tmp_path / 'other') != _digest(world)

def test_refuses_to_overwrite(tmp_path):
    write_world(tmp_path, 'smoke')
    with pytest.raises(FileExistsError, match='overwrite=True'): write_world(tmp_path, 'smoke')
    (tmp_path / 'cuhk02/P1/cam1/stale.png').write_bytes(b'')
    write_world(tmp_path, 'smoke', overwrite=True)
    assert not (tmp_path / 'cuhk02/P1/cam1/stale.png').exists()

def test_bad_scale():
    with pytest.raises(ValueError, match="scale='huge'"): expected_counts('huge')
    with pytest.raises(ValueError, match="choose one of"): write_world('/nonexistent/x', 'full')

def test_mini_plan_matches_expected_counts():
    "The mini world without drawing it: planned images and identities per dataset equal `expected_counts('mini')`."
    plans, want = plan_world('mini'), expected_counts('mini')
    for name, plan in plans.items():
        n_images = len(plan.shots) // (2 if name == 'CUHK03' else 1)
        assert n_images == want[name]['files']['images'], name
        real = {s.person for s in plan.shots if s.person % 10**6 < DISTRACTOR}
        assert len(real) == want[name]['files']['ids'], name
    m = want['Market1501']
    assert abs(m['query']['images'] / m['query']['ids'] - 3368 / 750) < 0.1
    assert abs(want['PRID']['gallery']['images'] / want['PRID']['query']['images'] - 6.49) < 0.1
