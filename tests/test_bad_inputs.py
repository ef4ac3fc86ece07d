"""Bad inputs a user meets, one case per row: each stops with one clear error (what, where, the fix) and leaves
every file already on disk as it was. README's table "Bad input → what you see" quotes these cases.

Not here: a read-only runs folder and results or checkpoints cut short by a crash (tests/test_faults.py); the bad
parameters that tests/test_table*.py and tests/test_figs_*.py already run through papermill."""
import hashlib, os, shutil
from pathlib import Path

import pytest
import torch
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from fgdi.check import check_images
from fgdi.clip import new_clip
from fgdi.config import RunConfig, make_config
from fgdi.data import DATASETS, DatasetError, open_dataset
from fgdi.experiment import run
from fgdi.protocols import load_protocol
from fgdi.synth import FOLDERS, write_world

NBS = Path(__file__).parents[1]/'nbs'
FIX = '\n  fix: '  # how every DatasetError introduces its fix


def snapshot(folder) -> dict:
    "Every file under `folder` with the SHA-256 of its bytes."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}

def assert_one_clear_error(call, exc, *parts, untouched) -> str:
    "`call()` raises `exc` whose message holds each of `parts`; the files under `untouched` stay byte for byte."
    before = snapshot(untouched)
    with pytest.raises(exc) as e: call()
    text = str(e.value)
    for part in parts: assert part in text, f'{part!r} is not in the message:\n{text}'
    assert snapshot(untouched) == before, 'a file on disk changed'
    return text


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('world')
    write_world(root, scale='smoke', seed=0)
    return root

@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv('FGDI_CACHE', str(tmp_path_factory.mktemp('cache')))

def dataset_copy(world, tmp_path, name:str) -> Path:
    "A data root holding a copy of the world's dataset `name` (a registry name) only."
    folder = FOLDERS[DATASETS[name].title]
    shutil.copytree(world/folder, tmp_path/'data'/folder)
    return tmp_path/'data'


# ---- datasets --------------------------------------------------------------------------------------------------------

def test_data_root_that_does_not_exist(tmp_path):
    missing = tmp_path/'no-such-folder'
    assert_one_clear_error(lambda: load_protocol(1, root=missing), DatasetError,
                           f'Market: data root not found: {missing}',
                           f'{FIX}give data_root (--data-root) or $FGDI_DATA the folder that holds the datasets',
                           untouched=tmp_path)
    assert not missing.exists()

NO_IMAGES = {  # registry name -> what the error says when every image of the dataset is gone
    'Market': 'no .jpg images in the folder', 'MSMT17': 'list_train.txt names 116 missing image(s), the first is',
    'cuhk03': 'splits_new_labeled.json names', 'CUHK02': 'no .png images in the folder',
    'cuhk_sysu': 'no .jpg images in the folder', 'PRID': 'no .png images in the folder',
    'GRID': 'no .jpeg images in the folder', 'VIPeR': 'no .bmp images in the folder',
    'iLIDS': 'no .jpg images in the folder'}

@pytest.mark.parametrize('name', NO_IMAGES)
def test_dataset_folder_without_images(world, tmp_path, name):
    root = dataset_copy(world, tmp_path, name)
    for f in [f for f in root.rglob('*') if f.suffix in ('.jpg', '.jpeg', '.png', '.bmp')]: f.unlink()
    assert_one_clear_error(lambda: open_dataset(name, root), DatasetError, f'{name}: ', NO_IMAGES[name],
                           str(root/FOLDERS[DATASETS[name].title]), FIX, untouched=root)


def rename_first(folder:Path, pattern:str, new_name:str) -> Path:
    "Give the first file matching `pattern` in `folder` the name `new_name`; the new path."
    f = sorted(folder.glob(pattern))[0]
    return f.rename(f.with_name(new_name))

def spoil_msmt_name(root:Path) -> str:
    "Rename the first training image of MSMT17 and its line in list_train.txt; the new line."
    lst = root/'MSMT17_V1/list_train.txt'
    lines = lst.read_text().splitlines()
    rel, pid = lines[0].split()
    (root/'MSMT17_V1/train'/rel).rename(root/'MSMT17_V1/train'/Path(rel).parent/'frame.jpg')
    lines[0] = f'{Path(rel).parent}/frame.jpg {pid}'
    lst.write_text('\n'.join(lines) + '\n')
    return f'cannot parse line 1: {lines[0]!r}'

BAD_NAMES = {  # registry name -> (folder, glob, the unparseable name, the example the fix names)
    'Market': ('Market-1501-v15.09.15/bounding_box_train', '*.jpg', 'c1_frame3.jpg', '0002_c1s1_000451_03.jpg'),
    'CUHK02': ('cuhk02/P1/cam1', '*.png', 'front.png', '001_1.png'),
    'cuhk_sysu': ('cuhk_sysu/cropped_images', '*.jpg', 'scene1.jpg', 'p1_s1.jpg'),
    'PRID': ('PRID/single_shot/cam_a', '*.png', 'person_a.png', 'person_0001.png'),
    'GRID': ('underground_reid/probe', '*.jpeg', 'probe.jpeg', '0001_1_25004_107_32_130_165.jpeg'),
    'VIPeR': ('VIPeR/cam_a', '*.bmp', 'left.bmp', '000_45.bmp'),
    'iLIDS': ('iLIDS/Persons', '*.jpg', 'p1.jpg', '0001001.jpg')}

@pytest.mark.parametrize('name', list(BAD_NAMES) + ['MSMT17', 'cuhk03'])
def test_file_name_that_does_not_parse(world, tmp_path, name):
    root = dataset_copy(world, tmp_path, name)
    if name == 'MSMT17':  # the names come from the list files: the line is what does not parse
        parts = (spoil_msmt_name(root), f"{FIX}keep the release's list files")
    elif name == 'cuhk03':  # the split file gives pid and camid: a renamed image is one it names but cannot find
        renamed = rename_first(root/'cuhk03/images_labeled', '*.png', 'img.png')
        parts = ('splits_new_labeled.json names 1 image(s) not in images_labeled/, the first is',
                 f'{FIX}extract all images')
    else:
        folder, pattern, bad, example = BAD_NAMES[name]
        renamed = rename_first(root/folder, pattern, bad)
        parts = (f'cannot parse the file name: {renamed}', f'{FIX}name the files as the release does, e.g. {example}')
    assert_one_clear_error(lambda: open_dataset(name, root), DatasetError, f'{name}: ', *parts, untouched=root)


DAMAGE = {  # how an image is spoilt -> what the error says about it
    'truncated JPEG': (lambda f: f.write_bytes(f.read_bytes()[:f.stat().st_size // 2]),
                       'OSError: image file is truncated'),
    'zero-byte image': (lambda f: f.write_bytes(b''), 'UnidentifiedImageError: cannot identify image file'),
    'text named .jpg': (lambda f: f.write_text('a caption, not an image\n'),
                        'UnidentifiedImageError: cannot identify image file'),
}

@pytest.mark.parametrize('case', DAMAGE)
def test_unusable_image_stops_the_run_before_training(world, tmp_path, case):
    root = dataset_copy(world, tmp_path, 'cuhk_sysu')
    victim = sorted((root/'cuhk_sysu/cropped_images').glob('*.jpg'))[1]
    spoil, problem = DAMAGE[case]
    spoil(victim)
    assert_one_clear_error(lambda: check_images(['cuhk_sysu'], root), DatasetError, '1 unusable image(s) under',
                           f'cuhk_sysu: cannot decode the image ({problem}', f'): {victim}{FIX}extract this file again '
                           'from the CUHK-SYSU archive, or delete it', untouched=root)


# ---- CLIP weights ----------------------------------------------------------------------------------------------------

def clip_file(folder:Path, backbone:str) -> Path:
    path = folder/f'{backbone}.pt'
    torch.save(new_clip(backbone).state_dict(), path)
    return path

def random_bytes(folder):
    (folder/'random.pt').write_bytes(os.urandom(4096))
    return folder/'random.pt'

def truncated(folder):
    whole = clip_file(folder, 'fgdi-tiny-vit').read_bytes()
    (folder/'cut.pt').write_bytes(whole[:len(whole) // 2])
    return folder/'cut.pt'

WEIGHTS = {  # case -> (the file, the scale asked for, what the error says)
    'random bytes': (random_bytes, 'smoke', 'Cannot read CLIP weights from {path} ('),  # the error type varies
    'truncated': (truncated, 'smoke', 'Cannot read CLIP weights from {path} (RuntimeError)'),
    'another architecture': (lambda d: clip_file(d, 'fgdi-tiny-rn'), 'smoke', "clip_weights='{path}' does not fit "
                             "fgdi-tiny-vit, the model of scale 'smoke'; they fit none of "
                             "['ViT-B-16', 'fgdi-mini-vit', 'fgdi-tiny-vit']: give weights made for one of them"),
    "another scale's model": (lambda d: clip_file(d, 'fgdi-tiny-vit'), 'mini', "clip_weights='{path}' does not fit "
                              "fgdi-mini-vit, the model of scale 'mini'; they fit fgdi-tiny-vit, the model of scale "
                              "'smoke': use scale='smoke'"),
}

@pytest.mark.parametrize('case', WEIGHTS)
def test_clip_weights_that_cannot_start_the_model(tmp_path, case):
    make_file, scale, message = WEIGHTS[case]
    user = tmp_path/'user'
    user.mkdir()
    path = make_file(user)
    cfg = make_config(scale=scale, clip_weights=str(path))  # backbone ViT-B-16: fgdi-tiny-vit at smoke scale
    text = assert_one_clear_error(lambda: run(cfg, runs_dir=user/'runs', verbose=False), ValueError,
                                  message.format(path=path), untouched=user)
    if case in ('random bytes', 'truncated'):
        assert '). The file is damaged or not a checkpoint: download it again' in text, text
    assert not (user/'runs').exists()  # stopped before the run folder


# ---- papermill parameters of the paper notebooks ------------------------------------------------------------------

PAPER_NOTEBOOKS = [f'table{i}.ipynb' for i in range(1, 9)] + [
    'fig3_beta.ipynb', 'fig4_init_epochs.ipynb', 'fig5_tsne.ipynb', 'fig6_gradcam.ipynb']
ONE_SEED = ('fig5_tsne.ipynb', 'fig6_gradcam.ipynb')  # `seed`, not `seeds`

def stops_at_the_check(nb:str, params:dict, tmp_path) -> str:
    "The error of `nb`'s cells run with `params` injected as papermill does; it must come from the checking cell."
    node = parameterize_notebook(load_notebook_node(str(NBS/nb)), {**params, 'runs_dir': str(tmp_path/'runs'),
                                 'out_dir': str(tmp_path/'out')}, kernel_name='python3', language='python')
    ns = {}
    for i, cell in enumerate(c for c in node.cells if c.cell_type == 'code'):
        try: exec(compile(cell.source, f'{nb}, code cell {i}', 'exec'), ns)
        except ValueError as e:
            assert 'check_param(' in cell.source, f'{nb} stopped in code cell {i}, not in its parameter check: {e}'
            assert not (tmp_path/'runs').exists() and not (tmp_path/'out').exists()
            return str(e)
        assert 'check_param(' not in cell.source, f'{nb} accepted {params}'
    pytest.fail(f'{nb} has no parameter check')

MISSING_CASES = (  # bad parameters that no papermill test covers yet: (notebook, parameters, what the error says)
    [(nb, dict(scale='huge'), "parameter scale='huge' is not valid; allowed: 'full', 'mini', 'smoke', 'auto'")
     for nb in PAPER_NOTEBOOKS]
    + [(nb, dict(variant='papr'), "parameter variant='papr' is not valid; allowed: 'paper', 'code'")
       for nb in PAPER_NOTEBOOKS]
    + [(nb, dict(seeds='1,x'), "parameter seeds='1,x' is not valid; use distinct integers, comma-separated")
       for nb in PAPER_NOTEBOOKS if nb not in ONE_SEED]
    + [(nb, dict(seed='x'), "parameter seed='x' is not valid; use an integer >= 0") for nb in ONE_SEED]
    + [(nb, dict(protocol=2), 'parameter protocol=2 is not valid')
       for nb in ('table5.ipynb', 'table7.ipynb', 'table8.ipynb', 'fig3_beta.ipynb')]
    + [('fig6_gradcam.ipynb', dict(protocol=2, target='X'), "parameter target='X' is not valid (the held-out dataset"),
       ('table3.ipynb', dict(plans='-1/120/30/60'), "parameter plans='-1/120/30/60' is not valid (plans as Table III")])

@pytest.mark.parametrize('nb, params, message', MISSING_CASES,
                         ids=[f"{nb.split('.')[0]}-{'-'.join(params)}" for nb, params, _ in MISSING_CASES])
def test_bad_notebook_parameter_stops_before_any_run(tmp_path, nb, params, message):
    text = stops_at_the_check(nb, params, tmp_path)
    assert message in text and '(papermill: -p ' in text, text


def test_seed_outside_numpys_range():
    with pytest.raises(ValueError, match=r"RunConfig.seed=-1 must be an integer in \[0, 2\*\*32\)"): RunConfig(seed=-1)
