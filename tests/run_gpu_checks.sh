#!/usr/bin/env bash
# The checks that need a CUDA GPU, for a machine that has one (CI has none).
#
#   bash tests/run_gpu_checks.sh [OUTPUT_FOLDER] [PART ...]
#
# Runs from the repository root with the machine's own python3, which must
# hold torch (a CUDA build), numpy, pyarrow and tqdm, plus pytest, pytest-xdist,
# hypothesis and scikit-learn for the tests; the package itself is read from
# the checkout (PYTHONPATH), and no server, browser or kernel is needed.
# PARTs (default: gpu bench suite, in that order: the suite is the longest):
#   gpu    tests/test_cuda.py and tests/test_preflight.py (one of its tests needs a GPU)
#   suite  the engine, loss, data and sweep tests (CPU) under this machine's
#          torch and Python, the tests that need Flask or MLflow left out
#   bench  benchmarks/bench_vectorized.py --device cuda (figures as ratios)
#   cpu42  the K = 42 figure on this machine's CPU (1 thread), for comparison
# Each part's output is kept in OUTPUT_FOLDER (default: gpu-checks).
set -uo pipefail
out=${1:-gpu-checks}
shift || true
if [ $# -eq 0 ]; then parts=(gpu bench suite); else parts=("$@"); fi
mkdir -p "$out"
export PYTHONPATH="$PWD:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTEST_ADDOPTS="-p no:cacheprovider"
status=0

python3 - <<'EOF' 2>&1 | tee "$out/machine.txt"
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
EOF

cpu_suite=(
    tests/test_crash_safety.py tests/test_data_eval_review.py tests/test_engine.py tests/test_engine_runner.py
    tests/test_functional_loss.py tests/test_fused_forward.py tests/test_legacy_folders.py
    tests/test_linear_form.py tests/test_loss.py tests/test_loss_review.py tests/test_results_columns.py
    tests/test_scores.py tests/test_sweep.py tests/test_validation.py tests/test_vectorized.py
)
needs_a_server="not serve_folder_answers_over_http and not mlflow"
# Each test's result is logged by name as it ends (-v), and a test that hangs fails after 120 s where
# pytest-timeout is installed: a run cut short still says which tests failed.
per_test=()
python3 -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout 120)

for part in "${parts[@]}"; do
    echo "== $part"
    case $part in
        gpu)   timeout 300 python3 -m pytest -v -rs "${per_test[@]}" tests/test_cuda.py tests/test_preflight.py 2>&1 \
                   | tee "$out/gpu.log" | (grep -Ev " PASSED" || true) ;;
        # One torch thread per worker: 8 workers with a thread per core each oversubscribe the CPU many times
        # over (the first run on an H200 machine, without this, had not finished after 300 s).
        suite) OMP_NUM_THREADS=1 timeout 400 python3 -m pytest -v -rfE -n 8 -W ignore "${per_test[@]}" \
                   -k "$needs_a_server" "${cpu_suite[@]}" 2>&1 | tee "$out/suite.log" \
                   | (grep -Ev " PASSED|Benchmark" || true) ;;
        bench) OMP_NUM_THREADS=1 timeout 300 python3 benchmarks/bench_vectorized.py --device cuda --repeats 1 \
                   --counts 1 10 42 2>&1 | tee "$out/bench.log" ;;
        cpu42) OMP_NUM_THREADS=1 timeout 300 python3 benchmarks/bench_vectorized.py --counts 42 --repeats 3 --pairs 6 \
                   2>&1 | tee "$out/cpu42.log" ;;
        *)     echo "unknown part: $part" >&2; false ;;
    esac
    code=$?
    echo "== $part: exit $code"
    [ $code -eq 0 ] || status=$code
done
exit $status
