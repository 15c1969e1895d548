#!/bin/bash
# The device machine's side of the GPU benchmarks: unpack the carried packages and this project's code, then
# run the steps named in STEPS, each in a fresh process with its own time limit. Every result is appended to
# $OUT/results.jsonl and every log to $OUT/log.txt (the device tool returns at most 8 files).
#   carry: build/gpu5 (site.tar.xz: the wheels the image lacks, unpacked; *.whl; code.tar.gz: `git ls-files`),
#   or PAYLOAD=build/gpu5cat (the catalogue's wheels: rapidocr and its parts instead of the film's ffmpeg and PyAV)
#   STEPS="save load-cold load load-seq load-lib run-cc1 run-cc2 worker run-plain" bash evals/gpu_device.sh
set -u
P=$(realpath "${PAYLOAD:-build/gpu5}")
DONE=/tmp/site/.done-$(basename "$P")
if [ ! -f "$DONE" ]; then
  mkdir -p /tmp/site
  if [ -f "$P/site.tar.xz" ]; then tar -xJf "$P/site.tar.xz" -C /tmp/site || exit 1; fi
  ls "$P"/*.whl >/dev/null 2>&1 && { python3 -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target /tmp/site "$P"/*.whl || exit 1; }
  # pip compiles a real install's modules; these were unpacked, so compile them once here (the image sets
  # PYTHONDONTWRITEBYTECODE, and without .pyc files every fresh process would compile them again)
  python3 -m compileall -q -j 16 /tmp/site > /dev/null 2>&1
  touch "$DONE"
fi
rm -rf /tmp/code && mkdir -p /tmp/code && tar -xzf "$P/code.tar.gz" -C /tmp/code || exit 1
python3 -m compileall -q -j 16 /tmp/code > /dev/null 2>&1
echo "PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-unset}"
export PYTHONPATH=/tmp/site:/tmp/code PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
cd /tmp/code
python3 -c "import torch, diffusers; print(torch.__version__, diffusers.__version__, torch.cuda.get_device_name())" || exit 1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,utilization.gpu,memory.used --format=csv,noheader
nproc; uptime; df -h /var/tmp /tmp | tail -2
W=/var/tmp/cd-weights/Z-Image-Turbo
CACHE=/tmp/cd-cc
C=evals/gpu_cold.py
F=evals/bench_film_gpu.py
one() {  # one NAME LIMIT_S script args...: a fresh process; its JSON row tagged with NAME
  local name=$1 lim=$2; shift 2
  echo "== $name $(date +%T)"; local t=$SECONDS
  timeout "$lim" python3 "$@" --out /tmp/r.json >> "$OUT/log.txt" 2>&1; local rc=$?
  echo "rc=$rc $((SECONDS - t)) s"
  if [ -f /tmp/r.json ]; then python3 -c "import json,sys; r=json.load(open('/tmp/r.json')); r['step']='$name'; r['rc']=$rc; print(json.dumps(r))" >> "$OUT/results.jsonl"; rm -f /tmp/r.json
  else echo "{\"step\": \"$name\", \"rc\": $rc}" >> "$OUT/results.jsonl"; tail -5 "$OUT/log.txt"; fi
}
for step in ${STEPS:-}; do
  case $step in
    save) [ -f $W/model_index.json ] || one save 200 $C save --folder $W ;;
    load-cold) sync; echo 3 > /proc/sys/vm/drop_caches && echo "page cache dropped"; one load-cold 120 $C load --folder $W ;;
    load) one load 90 $C load --folder $W ;;
    load-seq) one load-seq 90 $C load --folder $W --sequential ;;
    load-lib) one load-lib 120 $C load --folder $W --library ;;
    run-cc1) one run-cc1 200 $C run --folder $W --compile --compile-cache $CACHE ;;
    run-cc2) one run-cc2 120 $C run --folder $W --compile --compile-cache $CACHE ;;
    run-plain) one run-plain 120 $C run --folder $W ;;
    img-cc) one img-cc 150 $F --what images --compile --repeats 1 --compile-cache $CACHE ;;
    why) for d in /tmp/cold-run-*/film; do echo "== $d"; ls "$d" "$d"/shots/* 2>&1 | head -20
           cat "$d"/error.log 2>/dev/null | tail -60; cp "$d"/error.log "$OUT"/error.log 2>/dev/null
           grep -h -o '"error": *"[^"]*"' "$d"/*.json "$d"/shots/*/*.json 2>/dev/null | sort | uniq -c | head; done ;;
    worker) one worker 150 $C worker --folder $W --films 2 --compile --compile-cache $CACHE ;;
    worker-plain) one worker-plain 150 $C worker --folder $W --films 2 ;;
    fp8-1) one fp8-1 $(( ${BUDGET:-585} - SECONDS )) $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 ;;
    fp8-2) one fp8-2 300 $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 ;;
    cat-*) n=${step#cat-}; one "$step" 580 evals/bench_catalogue_gpu.py --mode local --units $n --compile --compile-cache $CACHE ;;
  esac
done
grep -h '"step"' "$OUT/results.jsonl" | cut -c1-600
