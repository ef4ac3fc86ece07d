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

@pytest.mark.parametrize('path', sorted(NBS.glob('*.ipynb')), ids=lambda p: p.stem)
def test_notebook_style(path):
    found = offences(path)
    assert not found, f"{path.name}: split the cell or wrap the line:\n" + '\n'.join(found)

def _parameter_names(cell) -> list[str]:
    "Names assigned at the start of a line of a `parameters` cell."
    import re
    return [m[1] for m in re.finditer(r'(?m)^(\w+)\s*(?::[^=]+)?=', cell.source)]

@pytest.mark.parametrize('path', [p for p in sorted(NBS.glob('*.ipynb'))
                                  if any('parameters' in c.metadata.get('tags', [])
                                         for c in nbformat.read(p, as_version=4).cells)], ids=lambda p: p.stem)
def test_papermill_lists_every_parameter(path):
    "`papermill --help-notebook` shows every parameter (papermill cannot parse a line whose comment holds '=')."
    import papermill as pm
    cell = next(c for c in nbformat.read(path, as_version=4).cells if 'parameters' in c.metadata.get('tags', []))
    listed = set(pm.inspect_notebook(str(path)))
    assert set(_parameter_names(cell)) <= listed, f"{path.name}: not listed by papermill: " \
        f"{sorted(set(_parameter_names(cell)) - listed)} (keep '=' out of the parameter's comment)"
