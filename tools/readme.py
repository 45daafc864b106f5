"""Write README.md from nbs/index.ipynb (markdown cells verbatim, code cells as fenced python)."""
import json, pathlib, sys

def render(nb_path='nbs/index.ipynb'):
    cells = json.loads(pathlib.Path(nb_path).read_text())['cells']
    out = []
    for c in cells:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#| hide'): continue
        out.append(src if c['cell_type'] == 'markdown' else f'```python\n{src}\n```')
    return '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook -->\n\n' + '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    text = render()
    if sys.argv[1:] == ['--check']:
        sys.exit(0 if pathlib.Path('README.md').read_text() == text else 'README.md is out of date: run python tools/readme.py')
    pathlib.Path('README.md').write_text(text)
