"""Every lesson and the front page carry outputs made from their current code (`python -m fgdi.docs refresh`), and
every executed paper notebook in examples/ says how it was made (`python -m fgdi.docs papers`)."""
from pathlib import Path
import nbformat, pytest
from fgdi.docs import DOCS_KEY, library_notebooks, outputs_problem, paper_notebooks

ROOT = Path(__file__).resolve().parents[1]
STAMP = ('scale', 'world', 'seeds', 'date', 'wall_time')

@pytest.mark.parametrize('path', library_notebooks(ROOT/'nbs'), ids=lambda p: p.stem)
def test_outputs_are_fresh(path):
    problem = outputs_problem(path)
    assert problem is None, problem

@pytest.mark.parametrize('path', sorted((ROOT/'examples').glob('*.ipynb')), ids=lambda p: p.stem)
def test_example_is_stamped(path):
    assert path.name in {p.name for p in paper_notebooks(ROOT/'nbs')}, f"examples/{path.name} has no source in nbs/"
    nb = nbformat.read(path, as_version=4)
    missing = [k for k in STAMP if k not in nb.metadata.get(DOCS_KEY, {})]
    assert not missing, f"examples/{path.name} lacks {missing}: run `python -m fgdi.docs papers {path.stem}`"
    assert nb.cells[1].source.startswith('> Executed by `python -m fgdi.docs papers'), "the stamp note is not shown"
