#!/usr/bin/env bash
# The checks and timings a lent GPU machine is for, in one run. From the repository root:
#
#   bash benchmarks/gpu_check.sh OUT_DIR [STAGE ...]
#
# Stages (default: env tests overhead epoch cifar):
#   env        the GPU, torch and CUDA versions; installs wheels carried in .whl/ (no network)
#   tests      the CUDA tests: tests/test_cuda.py and the CUDA trial of tests/test_datasets.py
#   overhead   benchmarks/online_overhead.py --device cuda: each online method's step vs SGD
#   epoch      benchmarks/mnist_epoch.py --device cuda: harness vs bare loop, 1-8 trials at once
#   cifar      `ohobench run --suite suites/paper-cifar10.toml --dry-run --device cuda`
#   stability  marthe and oho-layerwise on mnist-mlp, 100 epochs (STABILITY_* below), resumable
#
# MNIST is read from $MNIST_ROOT (default .devdata: torchvision's layout, MNIST/raw/*.gz).
# Each stage writes OUT_DIR/<stage>.log (and JSON where the script has it) and has its own time
# limit, so one stage that hangs costs only its own limit. Needs no Ray, Optuna or network.
set -u
out=${1:?usage: gpu_check.sh OUT_DIR [STAGE ...]}
shift
stages=${*:-env tests overhead epoch cifar}
mnist=${MNIST_ROOT:-.devdata}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out"

stage() {  # stage NAME SECONDS COMMAND...: run it under its limit, log it, print its tail
    local name=$1 limit=$2
    shift 2
    echo "== $name: start $(date +%T), limit ${limit}s"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "== $name: exit $? at $(date +%T)"
    tail -n "${TAIL:-25}" "$out/$name.log"
}

for s in $stages; do
    case $s in
    env)
        if ls .whl/*.whl >/dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
        fi
        stage env 60 bash -c 'nvidia-smi -L; nproc; python3 -c "import torch, sys;
print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"'
        ;;
    tests)
        stage tests 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
            "tests/test_datasets.py::test_mnist_mlp_trains_on_cuda" -rs
        ;;
    overhead)
        stage overhead 150 python3 benchmarks/online_overhead.py --device cuda --rounds 5 \
            --steps 50 --json "$out/overhead.json"
        ;;
    epoch)
        stage epoch 150 python3 benchmarks/mnist_epoch.py --device cuda --data-dir "$mnist" \
            --rounds 3 --concurrent 1,4,8 --json "$out/epoch.json"
        ;;
    cifar)
        stage cifar 150 python3 -c 'import sys; from bench.cli import main
sys.exit(main(["run", "--suite", "suites/paper-cifar10.toml", "--dry-run", "--device", "cuda",
               "--gpus-per-trial", "1"]))'
        ;;
    stability)
        for method in ${STABILITY_METHODS:-marthe}; do
            stage "stability-$method" "${STABILITY_SECONDS:-300}" python3 \
                benchmarks/online_stability.py --task mnist-mlp --method "$method" \
                --inits "${STABILITY_INITS:-10}" --epochs 100 --device cuda \
                --workers "${STABILITY_WORKERS:-10}" --data-dir "$mnist" \
                --out "$out/mnist-$method-cuda.jsonl"
        done
        ;;
    *) echo "unknown stage '$s'; valid: env tests overhead epoch cifar stability" >&2; exit 2 ;;
    esac
done
