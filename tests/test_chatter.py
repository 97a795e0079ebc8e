"""The libraries' start-up chatter is held back, and what a user must see is not."""

import os
import warnings

import pytest

from hzexp import chatter


def test_native_output_is_held_back_when_the_block_succeeds(capfd):
    with chatter.native_start_up_hidden():
        os.write(2, b"I0000 oneDNN custom operations are on\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_native_output_is_shown_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError), chatter.native_start_up_hidden():
        os.write(2, b"E0000 the reason it failed\n")
        raise RuntimeError("start-up failed")
    assert capfd.readouterr().err == "E0000 the reason it failed\n"


def test_notices_are_dropped_and_other_warnings_shown(monkeypatch):
    shown = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args: shown.append(message))
    for name in ("TF_CPP_MIN_LOG_LEVEL", "DASK_LOGGING__DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # a user's own setting stays
    chatter.hold_back()
    dropping = warnings.showwarning
    chatter.hold_back()  # the command's main() runs many times in one test process
    assert warnings.showwarning is dropping
    warnings.showwarning("Add type hints to the `predict` method", UserWarning, "m.py", 1)
    warnings.showwarning("heartbeat is experimental", type("ExperimentalWarning", (Warning,), {}),
                         "o.py", 1)
    warnings.showwarning("the magnitudes hold NaN", UserWarning, "m.py", 2)
    assert shown == ["the magnitudes hold NaN"]
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert os.environ["DASK_LOGGING__DISTRIBUTED"] == "warning"


@pytest.mark.parametrize(("value", "verbose"), [(None, False), ("0", False), ("1", True)])
def test_hzexp_verbose_asks_for_the_chatter(monkeypatch, value, verbose):
    if value is None:
        monkeypatch.delenv("HZEXP_VERBOSE", raising=False)
    else:
        monkeypatch.setenv("HZEXP_VERBOSE", value)
    assert chatter.is_verbose() is verbose
