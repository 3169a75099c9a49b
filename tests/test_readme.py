"""The README's Python example runs as written and produces the shapes its comments state."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    code = re.search(r"## Use from Python\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["output"].shape == (4, 20, 64)
    assert namespace["h_n"].shape == (4, 4, 32) and namespace["c_n"].shape == (4, 4, 32)
    assert (namespace["output"][1, 7:] == 0).all()  # zero past the second sequence's length (7)


def test_readme_training_example_runs():
    code = re.search(r"## Training\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["result"]["step"] == 60 and namespace["result"]["loss"] < 1.5


def test_readme_task_models_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves into runs/
    code = re.search(r"## Task models: the four patterns\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["out"].output.shape == (8, 3) and len(namespace["text"]) == 10
    assert namespace["best"].tokens.shape[0] == 8 and namespace["captions"].shape[0] == 8
