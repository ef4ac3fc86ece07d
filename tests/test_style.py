"Style of the notebooks, the kit's source: no code cell over 40 lines, no code line over 120 characters."
from pathlib import Path
import nbformat, pytest

NBS = Path(__file__).resolve().parents[1]/'nbs'
MAX_CELL_LINES, MAX_LINE = 40, 120

def offences(path: Path) -> list[str]:
    "Each code cell of notebook `path` that is too long or has a too-long line, as 'cell N: what'."
    found = []
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(c for c in cells if c.cell_type == 'code'):
        lines = cell.source.splitlines()
        if len(lines) > MAX_CELL_LINES: found.append(f"code cell {i}: {len(lines)} lines (at most {MAX_CELL_LINES})")
        found += [f"code cell {i} line {j + 1}: {len(l)} characters (at most {MAX_LINE})"
                  for j, l in enumerate(lines) if len(l) > MAX_LINE]
    return found

def test_offences_are_found(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1\n' * 41),
                                         nbformat.v4.new_code_cell('y = 1\n' + 'z' * 121)])
    nbformat.write(nb, tmp_path/'x.ipynb')
    assert offences(tmp_path/'x.ipynb') == ['code cell 0: 41 lines (at most 40)',
                                           'code cell 1 line 2: 121 characters (at most 120)']

# Notebooks that broke the rule when this check was written (issue 15, item 6: being split and wrapped by their
# owners). They are expected to fail until fixed: drop a name once its notebook passes. Any other notebook must pass.
KNOWN_OFFENDERS = {'00_config', '01_clip', '02_prompts', '03_grl', '04_losses', '05_model', '06_synth', '07_data',
                   '08_eval', '09_train', '10_pretrain', '11_experiment', '12_tables', '13_viz',
                   '14_cli', '15_blip', '17_world', 'fig3_beta', 'fig4_init_epochs', 'fig5_tsne',
                   'fig6_gradcam', 'table1', 'table2', 'table3', 'table4', 'table5', 'table6', 'table7', 'table8',
                   'world'}

def _case(path: Path):
    known = pytest.mark.xfail(reason='long cells or lines, to be split by the notebook owner', strict=False)
    return pytest.param(path, id=path.stem, marks=[known] if path.stem in KNOWN_OFFENDERS else [])

@pytest.mark.parametrize('path', [_case(p) for p in sorted(NBS.glob('*.ipynb'))])
def test_notebook_style(path):
    found = offences(path)
    assert not found, f"{path.name}: split the cell or wrap the line:\n" + '\n'.join(found)
