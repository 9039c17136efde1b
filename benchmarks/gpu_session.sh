#!/usr/bin/env bash
# One GPU session for the whole course, in one call of about 9 minutes:
#   1. `make bench` on CUDA, short (fp32 and bf16-autocast rows, tokens per second): bench_cuda.json
#   2. optional, SHOOTOUT_BUDGET > 0: chapter 08's shoot-out on CUDA (benchmarks/shootout.py --gpu), which
#      notebook 08 then reads; resumable, so a run cut short keeps its finished records
#   3. every course notebook in its GPU configuration (benchmarks/course_gpu.py): the notebooks' *_gpu
#      results, course_gpu_run.json and the executed notebooks.
#
#   MINIFT_COMMIT=<git hash of this tree> bash benchmarks/gpu_session.sh
#
# Needs only a Python with torch (CUDA), transformers, peft, numpy, matplotlib, tqdm and safetensors;
# Jupyter is optional (without it the notebooks run in course_gpu.py's plain executor). minift is used
# from this checkout (PYTHONPATH), not installed. MINIFT_COMMIT names the commit where the copy has no
# .git. Everything is written to $OUT (the device tool's output folder) or, without it, to
# results/gpu_session/: bench_cuda.json, course_gpu_run.json, session.log and gpu_session.tar.gz (all
# of it: results/ with the *_gpu files, executed/ notebooks and their logs). Unpack on the CPU side with
#   tar xzf gpu_session.tar.gz && cp results/* <checkout>/results/
# Overall budget: BUDGET seconds (default 540), of which BENCH_BUDGET (default 150) for the bench and
# SHOOTOUT_BUDGET (default 0: skipped) for the shoot-out.
set -u
cd "$(dirname "$0")/.."
BUDGET=${BUDGET:-540}
BENCH_BUDGET=${BENCH_BUDGET:-150}
SHOOTOUT_BUDGET=${SHOOTOUT_BUDGET:-0}
DEST=${OUT:-results/gpu_session}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
unset MINIFT_MODE
START=$(date +%s)
STAGE=$(mktemp -d)
mkdir -p "$STAGE/results" "$STAGE/executed" "$DEST"

{
    echo "== gpu_session $(date -u +%Y-%m-%dT%H:%M:%SZ), commit ${MINIFT_COMMIT:-from git}, budget ${BUDGET} s"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
    "$PYTHON" -c "import sys, torch, transformers, peft; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| transformers', transformers.__version__, '| peft', peft.__version__)"

    echo "== 1. bench (CUDA, budget ${BENCH_BUDGET} s)"
    timeout -k 10 $((BENCH_BUDGET + 90)) "$PYTHON" benchmarks/bench.py --device cuda --budget "$BENCH_BUDGET" \
        --json "$STAGE/results/bench_cuda.json" || echo "bench exited with status $?"

    if [ "$SHOOTOUT_BUDGET" -gt 0 ] && [ -f benchmarks/shootout.py ]; then
        echo "== 2. shoot-out (CUDA, at most ${SHOOTOUT_BUDGET} s)"
        timeout -k 10 "$SHOOTOUT_BUDGET" "$PYTHON" benchmarks/shootout.py --gpu --no-progress \
            || echo "shootout exited with status $? (finished runs stay in results/08_shootout_gpu*.jsonl)"
        cp results/08_shootout_gpu* "$STAGE/results/" 2>/dev/null || true
    fi

    LEFT=$((BUDGET - ($(date +%s) - START) - 15))
    echo "== 3. course notebooks, GPU configuration (budget ${LEFT} s)"
    if [ "$LEFT" -gt 30 ]; then
        timeout -k 10 $((LEFT + 30)) "$PYTHON" benchmarks/course_gpu.py --budget "$LEFT" \
            --results "$STAGE/results" --executed "$STAGE/executed" \
            --json "$STAGE/results/course_gpu_run.json" || echo "course_gpu exited with status $?"
    else
        echo "no time left for the notebooks"
    fi
    echo "== done in $(($(date +%s) - START)) s"
} 2>&1 | tee "$STAGE/session.log"

for f in results/bench_cuda.json results/course_gpu_run.json session.log; do
    [ -f "$STAGE/$f" ] && cp "$STAGE/$f" "$DEST/"
done
tar czf "$DEST/gpu_session.tar.gz" -C "$STAGE" results executed session.log
rm -rf "$STAGE"
echo "gpu_session: wrote $(ls "$DEST" | tr '\n' ' ')in $DEST"
