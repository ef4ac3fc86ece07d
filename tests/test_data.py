"""Integration tests of the data lessons (fgdi.data, .protocols, .transforms, .check): real-size small targets, CUHK03
extraction, the synthetic world, loaders, bad input."""
import importlib.util, json, os, shutil, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgdi.config import RunConfig
from fgdi.check import OFFICIAL_COUNTS, check, check_report
from fgdi.data import (DATASETS, SPLIT_IDS, CUHK03, DatasetError, Item, Market1501, PRID, ReidImages, VIPeR,
                       draw_splits, load_split, open_dataset, rank_split)
from fgdi.protocols import PROTOCOLS, SMALL_TARGETS, load_protocol, splits_record, target_splits
from fgdi.transforms import PKSampler, build_transforms, make_loaders


def write_images(root, names, size=(4, 8)):
    for rel in names:
        p = Path(root)/rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', size, (len(p.name) * 9 % 256, 80, 160)).save(p)


# ---- the shipped small-target splits at the real releases' sizes ----------------------------------------------------

@pytest.fixture(scope='module')
def small_targets_real_size(tmp_path_factory):
    "PRID, GRID, VIPeR and iLIDS with the official releases' file names and counts (4×8 px images)."
    root = tmp_path_factory.mktemp('real')
    write_images(root/'PRID/single_shot/cam_a', [f'person_{i:04d}.png' for i in range(1, 386)])
    write_images(root/'PRID/single_shot/cam_b', [f'person_{i:04d}.png' for i in range(1, 750)])
    write_images(root/'underground_reid/probe', [f'{p:04d}_{1 + p % 8}_25004_107_32_130_165.jpeg' for p in range(1, 251)])
    write_images(root/'underground_reid/gallery', [f'{p:04d}_{1 + (p + 1) % 8}_25004_107_32_130_165.jpeg' for p in range(1, 251)]
                 + [f'0000_{1 + i % 8}_{i:05d}_107_32_130_165.jpeg' for i in range(775)])
    ids = sorted(np.random.default_rng(0).choice(874, 632, replace=False))
    write_images(root/'VIPeR/cam_a', [f'{i:03d}_0.bmp' for i in ids])
    write_images(root/'VIPeR/cam_b', [f'{i:03d}_90.bmp' for i in ids])
    per_id = [2] * 40 + [4] * 39 + [6] * 40  # 119 identities, 476 images
    write_images(root/'iLIDS/Persons', [f'{p + 1:04d}{i:03d}.jpg' for p, n in enumerate(per_id) for i in range(1, n + 1)])
    assert sum(per_id) == 476
    return root


def test_small_targets_match_official_counts(small_targets_real_size):
    rows = {r.name: r for r in check(small_targets_real_size)}
    for name in SMALL_TARGETS:
        assert rows[name].status == 'found', rows[name].problems
        d = open_dataset(name, small_targets_real_size)
        assert d.counts() == OFFICIAL_COUNTS[name]
    assert {rows[n].status for n in set(DATASETS) - set(SMALL_TARGETS)} == {'missing'}


def test_small_target_splits_are_the_stored_ones(small_targets_real_size):
    root = small_targets_real_size
    for split_id in (0, 9):
        order = load_split('PRID', split_id)['order']
        q = open_dataset('PRID', root, split_id=split_id).query
        assert sorted(it.pid for it in q) == sorted(r + 1 for r in order[100:])
    v9, v8 = open_dataset('VIPeR', root, split_id=9), open_dataset('VIPeR', root, split_id=8)
    assert {it.camid for it in v9.query} == {1} and {it.camid for it in v8.query} == {0}
    queries = [frozenset(it.path for it in q) for _, q, _ in target_splits('iLIDS', root, RunConfig(average_splits=True))]
    assert len(queries) == 10 and len(set(queries)) == 10


def test_shipped_splits_are_reproducible():
    for name, n in SPLIT_IDS.items():
        shipped = json.loads((Path(__file__).parents[1]/'fgdi'/'splits'/f'{name}.json').read_text())
        assert shipped == draw_splits(name)
        for s in shipped['splits']:
            assert sorted(s['order']) == list(range(n))
            train, test = rank_split(s['order'], range(n))
            assert (len(train), len(test)) == (n // 2, n - n // 2) and not set(train) & set(test)


def test_grid_partitions_from_mat(small_targets_real_size, tmp_path):
    from scipy.io import savemat
    root = tmp_path
    (root/'underground_reid').mkdir()
    for sub in ('probe', 'gallery'):
        (root/'underground_reid'/sub).symlink_to(small_targets_real_size/'underground_reid'/sub)
    cells = np.empty((1, 10), dtype=object)
    for i in range(10):
        cells[0, i] = np.array([(0, 0, np.arange(1, 126)[None] + i)], dtype=[('a', 'O'), ('b', 'O'), ('trainIdx', 'O')])
    savemat(root/'underground_reid/features_and_partitions.mat', dict(trainIdxAll=cells))
    q = open_dataset('GRID', root, split_id=3).query
    assert sorted(it.pid for it in q) == [p for p in range(1, 251) if not 4 <= p <= 128]


# ---- CUHK03 from the release .mat files --------------------------------------------------------------------------------

def write_cuhk03_release(root, h5py, persons=3, pairs=2):
    "A miniature release: cuhk-03.mat in the MATLAB v7.3 (HDF5) layout + cuhk03_new_protocol_config_labeled.mat."
    from scipy.io import savemat
    d = root/'cuhk03'
    (d/'cuhk03_release').mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(d/'cuhk03_release/cuhk-03.mat', 'w') as f:
        for kind in ('labeled', 'detected'):
            pair_refs = []
            for pair in range(pairs):
                cells = np.empty((10, persons), dtype=h5py.ref_dtype)
                for person in range(persons):
                    for i in range(10):
                        one_view = person == 2 and i >= 5
                        arr = np.zeros(2, np.uint64) if one_view else rng.integers(0, 255, (3, 6, 12), dtype=np.uint8)
                        cells[i, person] = f.create_dataset(f'refs/{kind}_{pair}_{person}_{i}', data=arr).ref
                pair_refs.append(f.create_dataset(f'refs/{kind}_{pair}', data=cells).ref)
            f.create_dataset(kind, data=np.array([pair_refs], dtype=h5py.ref_dtype))
    files = [f'{pair + 1}_{person + 1:03d}_{1 if i < 5 else 2}_{i + 1:02d}.png' for pair in range(pairs)
             for person in range(persons) for i in range(10) if not (person == 2 and i >= 5)]
    fl = np.empty((len(files), 1), dtype=object)
    fl[:, 0] = files
    idx = lambda cond: np.array([i + 1 for i, n in enumerate(files) if cond(n)])[:, None]
    is_query = lambda n: n.startswith('2_') and n.endswith(('_01.png', '_06.png'))
    savemat(d/'cuhk03_new_protocol_config_labeled.mat', dict(
        filelist=fl, labels=np.array([int(n[0]) * 10 + int(n[2:5]) for n in files])[:, None],
        train_idx=idx(lambda n: n.startswith('1_')), query_idx=idx(is_query),
        gallery_idx=idx(lambda n: n.startswith('2_') and not is_query(n))))
    return files


def test_cuhk03_extracts_the_release(tmp_path):
    h5py = pytest.importorskip('h5py')
    files = write_cuhk03_release(tmp_path, h5py)
    c3 = CUHK03(tmp_path)
    assert sorted(os.listdir(tmp_path/'cuhk03/images_labeled')) == sorted(files)
    assert Image.open(tmp_path/'cuhk03/images_labeled'/files[0]).size == (6, 12)
    assert c3.counts() == dict(train=(25, 3), query=(5, 3), gallery=(20, 3))
    assert sorted({it.camid for it in c3.train}) == ['cuhk03_0', 'cuhk03_1']
    assert sorted({it.pid for it in c3.gallery}) == [3, 4, 5]


def test_cuhk03_without_h5py_says_what_to_do(tmp_path):
    if importlib.util.find_spec('h5py'): pytest.skip('h5py is installed: the extraction test covers this path')
    d = tmp_path/'cuhk03'
    (d/'cuhk03_release').mkdir(parents=True)
    for p in (d/'cuhk03_release/cuhk-03.mat', d/'cuhk03_new_protocol_config_labeled.mat'): p.write_bytes(b'')
    with pytest.raises(DatasetError, match='pip install h5py'): CUHK03(tmp_path)
    assert check(tmp_path)[2].problems[0].count('prepare_cuhk03') == 1


# ---- bad input -------------------------------------------------------------------------------------------------------

def test_bad_layouts_name_dataset_path_and_fix(tmp_path):
    with pytest.raises(DatasetError, match=r'Market: dataset folder not found: .*Market-1501-v15.09.15\n  fix: get Market'):
        Market1501(tmp_path)
    write_images(tmp_path/'Market-1501-v15.09.15/bounding_box_train', ['0002_c1s1_000451_03.jpg'])
    with pytest.raises(DatasetError, match=r'folder not found: .*query'): Market1501(tmp_path)
    write_images(tmp_path/'VIPeR/cam_a', ['000_0.bmp', '001_0.bmp'])
    write_images(tmp_path/'VIPeR/cam_b', ['000_90.bmp', '002_90.bmp'])
    with pytest.raises(DatasetError, match='cam_a and cam_b hold different identities'): VIPeR(tmp_path)
    write_images(tmp_path/'PRID/single_shot/cam_a', ['person_0001.png', 'person_1.png'])
    with pytest.raises(DatasetError, match='identity 1 has a second image'): PRID(tmp_path)
    report = check_report(tmp_path)
    assert report.count('\n  fix: ') == len(DATASETS)


def test_torchreid_layouts_are_named_in_the_fix(tmp_path):
    write_images(tmp_path/'ilids/i-LIDS_Pedestrian/Persons', ['0001001.jpg'])
    write_images(tmp_path/'cuhk02/Dataset/P1/cam1', ['001_1.png'])
    rows = {r.name: r for r in check(tmp_path)}
    assert rows['iLIDS'].status == 'missing'
    assert f"fix: move {tmp_path/'ilids/i-LIDS_Pedestrian/Persons'} to {tmp_path/'iLIDS/Persons'}" in rows['iLIDS'].problems[0]
    assert rows['CUHK02'].status == 'incomplete' and f"move {tmp_path/'cuhk02/Dataset/P1'} to" in rows['CUHK02'].problems[0]


def test_corrupt_image_in_a_worker(tmp_path):
    bad = tmp_path/'p1_s1.jpg'
    bad.write_bytes(b'\xff\xd8\xff garbage')
    loader = torch.utils.data.DataLoader(ReidImages([Item(str(bad), 0, 0, 0)], domain_names=['cuhk_sysu']), num_workers=1)
    with pytest.raises(DatasetError, match='cuhk_sysu: cannot read the image'): next(iter(loader))


# ---- the PK sampler at Protocol-1 scale -----------------------------------------------------------------------------

def test_pk_sampler_at_scale():
    rng = np.random.default_rng(0)
    counts = np.clip(rng.geometric(0.2, 16719), 1, 40)  # 16,719 identities as in Protocol-1, 1..40 images each
    pids = np.repeat(np.arange(len(counts)), counts).tolist()
    t0 = time.perf_counter()
    s = PKSampler(pids, 128, 4, seed=1)
    idx = np.array(list(s))
    assert time.perf_counter() - t0 < 10
    batches = np.array(pids)[idx].reshape(-1, 32, 4)
    assert (batches == batches[:, :, :1]).all() and all(len(set(b[:, 0])) == 32 for b in batches)
    assert len(idx) == len(PKSampler(pids, 128, 4, seed=1)) and (idx == list(PKSampler(pids, 128, 4, seed=1))).all()
    full = (counts // 4 + (counts < 4)).sum()  # chunks available in the epoch
    assert len(batches) * 32 > 0.9 * full


# ---- the synthetic world (fgdi.synth) --------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from fgdi.synth import write_world
    root = tmp_path_factory.mktemp('world')
    write_world(root, scale='smoke', seed=0)
    return root


def test_world_checks_complete(world):
    rows = check(world)
    assert [r.status for r in rows] == ['found'] * len(DATASETS), check_report(world)


@pytest.mark.parametrize('protocol,target', [(1, None)] + [(n, t) for n in (2, 3) for t in ('M', 'MS', 'C3')])
def test_world_protocols(world, protocol, target):
    p = load_protocol(protocol, target, world)
    spec = PROTOCOLS[p.name]
    sources = [open_dataset(s, world, combine_all=spec.combine_all) for s in spec.sources]
    assert p.domain_names == sorted(d.domain for d in sources)
    assert len(p.train) == sum(len(d.train) for d in sources)
    assert p.num_classes == len(p.pid_names) == sum(len({it.pid for it in d.train}) for d in sources)
    assert p.pid_names == sorted(p.pid_names) and {it.pid for it in p.train} == set(range(p.num_classes))
    for d in sources:  # each source's images carry its own domain label
        label = p.domain_names.index(d.domain)
        assert {it.domain for it in p.train if it.path.startswith(str(d.dir) + os.sep)} == {label}
    for t in p.targets:
        q, g = p.query[t], p.gallery[t]
        assert q and g and {it.pid for it in q} <= {it.pid for it in g}
    code = load_protocol(protocol, target, world, RunConfig(num_classes='code'))
    assert code.num_classes == sum(spec.classes)


def test_world_market_distractors(world):
    keep = load_protocol(3, 'MS', world)
    drop = load_protocol(3, 'MS', world, RunConfig(market_distractors=False))
    assert keep.num_classes - drop.num_classes == 1 and len(keep.train) > len(drop.train)


def test_world_loaders_are_reproducible(world):
    cfg = RunConfig(size_train=(64, 32), size_test=(64, 32), batch_size=16, num_instances=4, num_workers=2, seed=3)
    p = load_protocol(2, 'M', world)
    first = [next(iter(make_loaders(p, cfg)['train'])) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*first))
    x, pid, camid, domain = first[0]
    assert x.shape == (16, 3, 64, 32) and (pid.view(4, 4) == pid.view(4, 4)[:, :1]).all()
    assert torch.allclose(x.mean((2, 3)), torch.zeros(16, 3), atol=1e-4)
    loader, num_query = make_loaders(p, cfg)['test']['Market']
    assert sum(len(b[0]) for b in loader) == num_query + len(p.gallery['Market'])


def test_world_transforms_on_real_files(world):
    p = load_protocol(1, None, world)
    ds = ReidImages(p.train[:32], build_transforms(RunConfig(), True), p.domain_names)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    assert x.shape == (32, 3, 224, 224)
    assert torch.allclose(x.mean((2, 3)), torch.zeros(32, 3), atol=1e-4)


# ---- the released code's split files (RunConfig.splits) ------------------------------------------------------------

PARTS = ('query', 'gallery')

def released_parts(root, name, split_id=9) -> dict:
    "Query and gallery as `(file name, pid, camid)`, computed from the split file the way the released code reads it."
    base = Path(root)/DATASETS[name].folder
    key = lambda p: Path(p).name
    if name == 'PRID':
        split = json.loads((base/'splits_single_shot.json').read_text())[split_id]
        cam_b = sorted(int(f.stem.split('_')[1]) for f in (base/'single_shot/cam_b').glob('*.png'))
        others = [p for p in cam_b if p not in split['train'] + split['test']]  # the code's range(201, 750)
        return dict(query=[(f'person_{p:04d}.png', p, 0) for p in split['test']],
                    gallery=[(f'person_{p:04d}.png', p, 1) for p in split['test'] + others])
    if name == 'GRID':
        import scipy.io
        train = scipy.io.loadmat(base/'features_and_partitions.mat')['trainIdxAll'][0][split_id][0][0][2][0].tolist()
        rows = lambda sub: [(f.name, int(f.name.split('_')[0]), int(f.name.split('_')[1]) - 1)
                            for f in sorted((base/sub).glob('*.jpeg')) if int(f.name.split('_')[0]) not in train]
        return dict(query=rows('probe'), gallery=rows('gallery'))
    split = json.loads((base/'splits.json').read_text())[split_id]
    if name == 'VIPeR': return {part: [(key(p), pid, cam) for p, pid, cam, *_ in split[part]] for part in PARTS}
    return {part: [(n, int(n[:4]), int(n[4:7]) - 1) for n in split[part]] for part in PARTS}  # iLIDS

def fgdi_parts(d) -> dict:
    return {part: [(Path(it.path).name, it.pid, it.camid) for it in getattr(d, part)] for part in PARTS}

@pytest.fixture
def small_copy(world, tmp_path):
    "The four small targets of the world, split files included, in a folder that is not the embedded world."
    for name in SMALL_TARGETS: shutil.copytree(world/DATASETS[name].folder, tmp_path/DATASETS[name].folder)
    return tmp_path


@pytest.mark.parametrize('name', SMALL_TARGETS)
def test_world_split_files_give_the_released_codes_test_sets(world, name):
    for split_id in (9, 4):
        d = open_dataset(name, world, RunConfig(splits='disk'), split_id=split_id)
        assert d.source == 'disk' and fgdi_parts(d) == released_parts(world, name, split_id)


def test_world_keeps_the_shipped_splits_unless_asked(world, small_copy):
    assert splits_record(RunConfig(data_root=str(world))) == 'PRID shipped, GRID disk, VIPeR shipped, iLIDS shipped'
    assert splits_record(RunConfig(data_root=str(small_copy))) == 'disk'
    assert splits_record(RunConfig(data_root=str(world), splits='shipped')) == 'shipped'
    assert splits_record(RunConfig(protocol=2, target='M', data_root=str(world))) is None
    for name in ('PRID', 'VIPeR', 'iLIDS'):
        auto, shipped = open_dataset(name, world), open_dataset(name, world, RunConfig(splits='shipped'))
        assert auto.source == 'shipped' and auto.query == shipped.query and auto.gallery == shipped.gallery
        assert fgdi_parts(open_dataset(name, small_copy)) == released_parts(world, name)  # 'auto' off the world: disk
    p = load_protocol(1, None, world, RunConfig(splits='disk'))
    assert p.split_sources == dict.fromkeys(SMALL_TARGETS, 'disk') and '(split 9, disk)' in p.summary()


def _edit_json(path, change):
    splits = json.loads(path.read_text())
    change(splits[9])
    path.write_text(json.dumps(splits))

def _mat_with_train(path, train):
    import scipy.io
    cells = scipy.io.loadmat(path)['trainIdxAll']
    cells[0, 9] = np.array([(0, 0, np.array([train]))], dtype=[('a', 'O'), ('b', 'O'), ('trainIdx', 'O')])
    scipy.io.savemat(path, dict(trainIdxAll=cells))

def _set_query_path(split, path): split['query'][0][0] = path

MISFITS = {  # case -> (split file, how it is spoiled, what the error says)
    'PRID unknown id': ('PRID/splits_single_shot.json', lambda p: _edit_json(p, lambda s: s['test'].append(999)),
                        'not shared: [999]'),
    'PRID cut short': ('PRID/splits_single_shot.json', lambda p: p.write_text(p.read_text()[:-9]),
                       'it is not readable JSON (JSONDecodeError'),
    'VIPeR unknown file': ('VIPeR/splits.json', lambda p: _edit_json(p, lambda s: _set_query_path(s, 'b/999_0.bmp')),
                           "names 'b/999_0.bmp' with camid 1, not an image of cam_a"),
    'VIPeR wrong count': ('VIPeR/splits.json', lambda p: _edit_json(p, lambda s: s['gallery'].pop()),
                          'gallery images; the'),
    'iLIDS wrong count': ('iLIDS/splits.json',
                          lambda p: _edit_json(p, lambda s: (s['query'].pop(), s['gallery'].pop())), 'test pairs'),
    'iLIDS other schema': ('iLIDS/splits.json', lambda p: p.write_text(json.dumps({'query': []})),
                           'it is not a list of splits (JSON objects)'),
    'GRID too many ids': ('underground_reid/features_and_partitions.mat',
                          lambda p: _mat_with_train(p, list(range(1, 9))), 'trains on 8 ids'),
}

@pytest.mark.parametrize('case', MISFITS)
def test_a_split_file_that_does_not_fit_is_one_error(small_copy, case):
    rel, spoil, message = MISFITS[case]
    name = next(n for n in SMALL_TARGETS if rel.startswith(DATASETS[n].folder + '/'))
    spoil(small_copy/rel)
    with pytest.raises(DatasetError) as e: open_dataset(name, small_copy)
    text = str(e.value)
    assert text.startswith(f'{name}: split file rejected, ') and message in text, text
    assert f'{small_copy/rel}\n  fix: put the {Path(rel).name} written for these images there, or use splits=' in text
    assert open_dataset(name, small_copy, RunConfig(splits='shipped')).query  # the fix works


def test_disk_splits_without_the_file_say_what_to_do(small_copy):
    (small_copy/'iLIDS/splits.json').unlink()
    missing = r"iLIDS: splits='disk' needs the split file, which is not there: .*splits.json\n  fix: .*'shipped'"
    with pytest.raises(DatasetError, match=missing):
        open_dataset('iLIDS', small_copy, RunConfig(splits='disk'))
    assert open_dataset('iLIDS', small_copy).source == 'shipped'
    with pytest.raises(ValueError, match=r"RunConfig.splits='file' is not valid; choose one of \['auto', 'disk', "):
        RunConfig(splits='file')
