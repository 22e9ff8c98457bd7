import subprocess
import sys
from pathlib import Path

import pytest

import dcinet


def test_public_api_names_resolve():
    for name in dcinet.__all__:
        assert getattr(dcinet, name) is not None
    assert dcinet.load_config("cpu-tiny").backbone == "resnet10t"
    with pytest.raises(AttributeError):
        dcinet.no_such_name  # noqa: B018


def test_every_heavy_name_is_visible_to_type_checkers():
    source = (Path(dcinet.__file__)).read_text()
    for name, module in dcinet._HEAVY.items():
        assert f"from {module} import" in source and name in source
    assert sorted(dcinet.__all__) == sorted([*dcinet._HEAVY, "Config", "DcinetError", "load_config"])


def test_import_dcinet_does_not_load_torch():
    code = "import sys, dcinet; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)
