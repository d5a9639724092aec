"""The demo command with its training set gated, for ``test_standalone_demo.py``.

Run as ``python gated_demo.py GATE_FOLDER demo --no-browser ...``. The script
defines ``GatedBatches`` (``sweep_gate.KERNEL_SOURCE``, the same class as in the
JupyterLab test's notebook), makes the demo's ``load_digits_data`` hand out its
training set as ``GatedBatches(training_set, GATE_FOLDER, ...)``, and then runs
the command line's ``main()`` with the other arguments: the demo runs as
``python -m backwardcompatibilityml demo`` runs, but a test can stall its
sweep at the start of chosen passes over the training set
(:class:`~.sweep_gate.PassGate`). The gate learns that the sweep registered a
cancel from the demo's ``SweepManager.cancel_requested``.

``tests/test_cli.py`` drives the command line the same way (its ``DRIVER``).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sweep_gate import kernel_source  # noqa: E402

from backwardcompatibilityml import demo  # noqa: E402
from backwardcompatibilityml.__main__ import main  # noqa: E402


def _install(folder: str) -> None:
    namespace: dict = {}
    exec(kernel_source(), namespace)
    gated_batches = namespace["GatedBatches"]
    built = {}
    real_load, real_build = demo.load_digits_data, demo.build_digits_sweep

    def stop_requested() -> bool:
        manager = built.get("manager")
        return manager is not None and manager.cancel_requested

    def load_digits_data(*args, **kwargs):
        data = real_load(*args, **kwargs)
        data.training_set = gated_batches(data.training_set, folder, stop_requested=stop_requested)
        return data

    def build_digits_sweep(*args, **kwargs):
        manager, data = real_build(*args, **kwargs)
        built["manager"] = manager
        return manager, data

    demo.load_digits_data = load_digits_data
    demo.build_digits_sweep = build_digits_sweep


if __name__ == "__main__":
    _install(sys.argv[1])
    sys.argv[0] = "bcml"
    sys.exit(main(sys.argv[2:]))
