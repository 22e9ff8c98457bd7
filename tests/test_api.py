import pytest

import dcinet


def test_public_api_names_resolve():
    for name in dcinet.__all__:
        assert getattr(dcinet, name) is not None
    assert dcinet.load_config("cpu-tiny").backbone == "resnet18"
    with pytest.raises(AttributeError):
        dcinet.no_such_name  # noqa: B018
