"""Result files respect the user's umask (``tempfile.mkstemp`` alone would make them 0600)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

WRITER = r"""
import json, os, sys
import torch
from backwardcompatibilityml.permissions import current_umask
from backwardcompatibilityml.store import SweepStore

store = SweepStore(sys.argv[1])
store.write_json("sweep_summary.json", {"data": []})
store.save_model_state(0.5, "new-error", {"w": torch.zeros(2)})
before = os.umask(0o077); os.umask(before)
print(json.dumps({"umask_seen": current_umask(), "umask_after": before}))
"""


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_result_files_get_the_mode_the_umask_allows(tmp_path, umask, expected):
    folder = tmp_path / "sweep"
    out = subprocess.run(
        [sys.executable, "-c", WRITER, str(folder)], capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: os.umask(umask), check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"umask_seen": umask, "umask_after": umask}, "reading the umask must not change it"
    for name in ("sweep_summary.json", "0.5-model-new-error.state"):
        mode = stat.S_IMODE(os.stat(folder / name).st_mode)
        assert mode == expected, f"{name}: {oct(mode)} instead of {oct(expected)}"
    assert not [name for name in os.listdir(folder) if name.startswith(".tmp-")]
