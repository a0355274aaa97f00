"""One settings check: every error about an argument (a message 'argument <key>: ...') is raised by arguments.py, where
get_args checks the values and check_settings, once before anything is loaded, checks them against the machine, the
teacher and the run resumed; library code keeps assertions of its invariants. Read from the source itself."""
import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The few argument errors that can only be raised where the thing they depend on is read, and why.
RAISED_WHERE_READ = {
    ('trainer/checkpoint.py', 'prepare_run_dir'): 'the run directory, checked where it is created (it may change '
                                                  'between a check and its creation)',
    ('trainer/checkpoint.py', '_reopen'): 'the run directory again, once its lock is held (a live run may have held '
                                          'it until then)',
    ('data/voxceleb.py', 'hold_out_speakers'): 'val_speakers against the speakers found in the scanned data',
    ('data/augment.py', '_listed'): 'path_musan / path_rir as scanned: files of the expected layout found or not',
    ('data/augment.py', 'scan_noise_sets'): 'the noise folders as given, also by the data.corrupt and bench CLIs '
                                            '(for training, check_args refuses aug_prob > 0 without them first)',
    ('compare.py', 'compare'): "compare.py's own rule: the keys it sets per run are not the user's to give",
}


def raised_messages(tree: ast.AST):
    """(enclosing function, text of the string parts of its message) of every `raise` inside a function of `tree`."""
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [n.value for n in ast.walk(node.exc)
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                yield function.name, ''.join(texts)


def argument_errors() -> dict[tuple[str, str], list[str]]:
    """(file, function) → the argument errors it raises, for every Python file of the project but arguments.py."""
    found = {}
    for folder, _, files in os.walk(REPO):
        relative = os.path.relpath(folder, REPO)
        if relative != '.' and (relative.split(os.sep)[0] == 'tests' or relative.startswith('.')):
            continue
        for name in files:
            path = os.path.normpath(os.path.join(relative, name))
            if not name.endswith('.py') or path == 'arguments.py':
                continue
            tree = ast.parse(open(os.path.join(REPO, path), encoding='utf-8').read(), path)
            for function, text in raised_messages(tree):
                if text.lstrip().startswith('argument ') or "argument '" in text:
                    found.setdefault((path, function), []).append(text)
    return found


def test_argument_errors_are_raised_by_the_settings_check_only():
    found = argument_errors()
    assert set(found) - set(RAISED_WHERE_READ) == set(), {k: v for k, v in found.items() if k not in RAISED_WHERE_READ}
    assert set(RAISED_WHERE_READ) <= set(found)  # each exception is still there (the scan finds raises)


def test_arguments_py_raises_its_errors_through_one_helper():
    tree = ast.parse(open(os.path.join(REPO, 'arguments.py'), encoding='utf-8').read())
    messages = [text for _, text in raised_messages(tree)]
    assert any(text.startswith('argument ') for text in messages)  # _fail and the parsing errors
