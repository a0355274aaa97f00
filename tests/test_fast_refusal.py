"""A wrong argument stops `python main.py` with its one `error:` line and exit status 2 before torch or transformers
is imported (arguments.py imports neither): the refusal costs a fraction of a second, not the ~10 s of the imports."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ('torch', 'transformers', 'numpy', 'safetensors')


def imported_modules(importtime: str) -> set[str]:
    """Module names in `python -X importtime` output ('import time: self | cumulative | name' lines)."""
    return {m.group(1) for m in re.finditer(r'^import time:\s+\d+ \|\s+\d+ \| +(\S+)$', importtime, re.M)}


@pytest.mark.slow
@pytest.mark.parametrize('item, message', [
    ('epoch=-1', "error: argument 'epoch': got -1; expected an int >= 1"),
    ('bad_key=1', "error: argument 'bad_key': unknown key (--help lists every key)"),
    ('lr=fast', "error: argument 'lr': could not parse 'fast'; expected a float (default 5e-05)"),
    ('curriculum=cosin', "error: argument 'curriculum': got 'cosin'; expected one of ['linear', 'constant', 'step', "
                         "'cosine', 'none', 'switch']")])
def test_a_wrong_argument_stops_before_torch_is_imported(item, message):
    result = subprocess.run([sys.executable, '-X', 'importtime', 'main.py', item], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    modules = imported_modules(result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith('import time:')]
    assert (result.returncode, lines, result.stdout) == (2, [message], '')
    assert 'arguments' in modules and 'json' in modules  # the import log is read: it lists what was imported
    assert not {m for m in modules if m.split('.')[0] in HEAVY}
