"""SweepReader: the read side of a sweep folder, shared by SweepManager and usable alone."""

from __future__ import annotations

import pytest

from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.sweep_reader import SweepReader
from sweep_setup import build_manager


def test_a_reader_serves_what_the_manager_wrote_and_cannot_train(tmp_path):
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    reader = SweepReader(manager.folder_name)
    assert isinstance(manager, SweepReader) and not hasattr(reader, "start_sweep")
    assert reader.get_sweep_summary() == manager.get_sweep_summary()
    assert reader.get_sweep_status()["state"] == "completed"
    assert reader.get_sweep_status()["completed_points"] == 8
    assert reader.lambda_c_values == manager.lambda_c_values == [0.0, 1.0]
    assert reader.fingerprint() == manager.fingerprint() is not None
    assert reader.configuration() == manager.configuration()
    assert reader.get_evaluation(3) == manager.get_evaluation(3)
    with pytest.raises(KeyError):
        reader.get_evaluation(8)
    opened = SweepManager.open_folder(manager.folder_name)
    assert opened.get_sweep_summary() == reader.get_sweep_summary()


def test_a_folder_without_a_sweep_is_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    for opener in (SweepReader, SweepManager.open_folder):
        with pytest.raises(ValueError, match="empty.* holds no sweep|is not a folder"):
            opener(str(tmp_path / "empty"))
