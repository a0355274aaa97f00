"""The imports run one way, read from the code itself: data/, models/, utils/ import nothing above them; log/ knows
neither trainer/ nor arguments; trainer/ knows neither export/ nor the entry points; no two folders import each
other (directly or through others); trainer/ stays small."""
import ast
import itertools
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ('data', 'models', 'utils', 'log', 'trainer', 'export')
TOP = ('arguments', 'main', 'compare')  # top-level modules: the entry points and the settings
FORBIDDEN = {'data': {'models', 'log', 'trainer', 'export', *TOP}, 'models': {'log', 'trainer', 'export', *TOP},
             'utils': {'data', 'models', 'log', 'trainer', 'export', *TOP}, 'log': {'trainer', 'export', *TOP},
             'trainer': {'export', *TOP}, 'export': {'log', *TOP}}


def imported_tops(path: str) -> set[str]:
    """First components of every module `path` imports (absolute imports; the project uses no relative ones)."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f'{path}: relative import'
            names.add(node.module.split('.')[0])
    return names


def folder_imports() -> dict[str, set[str]]:
    """Per project folder, the project folders and top-level modules its files import (itself excluded)."""
    graph = {}
    for folder in FOLDERS:
        files = [os.path.join(REPO, folder, f) for f in os.listdir(os.path.join(REPO, folder)) if f.endswith('.py')]
        graph[folder] = set().union(*(imported_tops(f) for f in files)) & (set(FOLDERS) | set(TOP)) - {folder}
    return graph


def test_no_import_runs_back_up():
    graph = folder_imports()
    for folder, imported in graph.items():
        assert not imported & FORBIDDEN[folder], (folder, sorted(imported & FORBIDDEN[folder]))
    assert 'data' in graph['trainer'] and 'models' in graph['trainer']  # the graph is read, not empty


def test_no_cycle_between_folders():
    graph = folder_imports()
    reach = {folder: set(imported) for folder, imported in graph.items()}
    for _ in FOLDERS:  # transitive closure
        for folder in FOLDERS:
            reach[folder] |= set().union(*(reach.get(other, set()) for other in reach[folder]))
    for a, b in itertools.combinations(FOLDERS, 2):
        assert not (b in reach[a] and a in reach[b]), (a, b)


def test_trainer_is_at_most_seven_files():
    files = [f for f in os.listdir(os.path.join(REPO, 'trainer')) if f.endswith('.py')]
    assert 3 <= len(files) <= 7, sorted(files)
