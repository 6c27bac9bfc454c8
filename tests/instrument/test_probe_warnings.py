"""The precision probe is silent and leaves the record of warnings already shown
alone (``catch_warnings`` would reset it: once-per-location warnings shown again)."""
import warnings

import pytest
import torch
from torch import nn

from nnprof.instrument.probe import precision_state


@pytest.fixture
def shown(monkeypatch):
    """Warnings that reach the output, under the "default" action (once per location)."""
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        monkeypatch.setattr(warnings, "showwarning",
                            lambda message, *a, **k: seen.append(str(message)))
        yield seen


def _emit():
    warnings.warn("shown once per location", UserWarning)


def test_probe_keeps_warnings_already_shown(shown):
    before = list(warnings.filters)
    for _ in range(3):
        _emit()
        precision_state(nn.Linear(2, 2))
    _emit()
    assert shown == ["shown once per location"]
    assert warnings.filters == before


def test_probe_silences_warnings_of_its_own(shown, monkeypatch):
    original = torch.get_float32_matmul_precision

    def noisy():
        warnings.warn("legacy precision API", UserWarning)
        return original()
    monkeypatch.setattr(torch, "get_float32_matmul_precision", noisy)
    state = precision_state(nn.Linear(2, 2))
    assert state["float32_matmul_precision"] == original()
    assert state["param_dtype"] == "float32"
    assert shown == []
    monkeypatch.setattr(torch, "get_float32_matmul_precision", original)
    _emit()  # the script's own warnings still show
    assert shown == ["shown once per location"]
