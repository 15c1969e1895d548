#!/bin/bash
# The device machine's side of the GPU benchmarks: unpack the carried packages and this project's code, then
# run the steps named in STEPS, each in a fresh process with its own time limit. Every result is appended to
# $OUT/results.jsonl and every log to $OUT/log.txt (the device tool returns at most 8 files).
#   carry: build/gpu6 (site.tar.xz: the wheels the image lacks, unpacked; *.whl; code.tar.gz: `git ls-files`),
#   and/or EXTRA=build/gpu6cat (the catalogue's wheels: rapidocr and its parts, installed on top of an earlier
#   call's /tmp/site on a machine still warm; the two sets together are over the 64 MiB carry)
#   STEPS="save load-cold load load-seq load-lib run-cc1 run-cc2 worker run-plain" bash evals/gpu_device.sh
#   CACHE_IN=build/gpu6/compile_artifacts.bin: a mega-cache file brought back from an earlier machine
set -u
P=$(realpath "${PAYLOAD:-build/gpu6}")
install_payload() {  # install_payload DIR: its site.tar.xz unpacked and its wheels installed into /tmp/site, once
  local dir=$1 done=/tmp/site/.done-$(basename "$1")
  [ -f "$done" ] && return 0
  mkdir -p /tmp/site
  if [ -f "$dir/site.tar.xz" ]; then tar -xJf "$dir/site.tar.xz" -C /tmp/site || return 1; fi
  ls "$dir"/*.whl >/dev/null 2>&1 && { python3 -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target /tmp/site "$dir"/*.whl || return 1; }
  # pip compiles a real install's modules; these were unpacked, so compile them once here (the image sets
  # PYTHONDONTWRITEBYTECODE, and without .pyc files every fresh process would compile them again)
  python3 -m compileall -q -j 16 /tmp/site > /dev/null 2>&1
  touch "$done"
}
install_payload "$P" || exit 1
if [ -n "${EXTRA:-}" ]; then install_payload "$(realpath "$EXTRA")" || exit 1; fi
ls -a /tmp/site | grep '^.done' | tr '\n' ' '; echo
rm -rf /tmp/code && mkdir -p /tmp/code && tar -xzf "$P/code.tar.gz" -C /tmp/code || exit 1
for c in /tmp/cd-cc8 /tmp/cd-cc; do  # CACHE_IN may be xz-compressed (the 8.5 MB FP8 file packs to 0.5 MB)
  if [ -n "${CACHE_IN:-}" ] && [ -f "$CACHE_IN" ] && [ ! -f $c/compile_artifacts.bin ]; then
    mkdir -p $c && case $CACHE_IN in *.xz) xz -dc "$CACHE_IN" > $c/compile_artifacts.bin ;; *) cp "$CACHE_IN" $c/compile_artifacts.bin ;; esac
    echo "mega-cache $CACHE_IN -> $c ($(stat -c %s $c/compile_artifacts.bin) bytes)"; fi
done
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
END=${END:-$(( $(date +%s) + ${BUDGET:-585} ))}
left() {  # left [CAP]: seconds to the call's end (END, epoch seconds), at most CAP
  local l=$(( END - $(date +%s) )) cap=${1:-100000}; echo $(( l < cap ? l : cap ))
}
one() {  # one NAME LIMIT_S script args...: a fresh process; its JSON row tagged with NAME
  local name=$1 lim=$2; shift 2
  if [ "$lim" -lt 25 ]; then echo "== $name skipped: ${lim} s left"; echo "{\"step\": \"$name\", \"skipped\": true}" >> "$OUT/results.jsonl"; return; fi
  echo "== $name $(date +%T)"; local t=$SECONDS
  timeout "$lim" python3 "$@" --out /tmp/r.json >> "$OUT/log.txt" 2>&1; local rc=$?
  echo "rc=$rc $((SECONDS - t)) s"
  if [ -f /tmp/r.json ]; then python3 -c "import json,sys; r=json.load(open('/tmp/r.json')); r={'rows': r} if isinstance(r, list) else r; r['step']='$name'; r['rc']=$rc; print(json.dumps(r))" >> "$OUT/results.jsonl"; rm -f /tmp/r.json
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
    run-plain-t) one run-plain-t $(left 120) $C run --folder $W --trace ;;
    run-aot) one run-aot $(left ${AOT_CAP:-120}) $C run --folder $W --trace --compile-aot --compile-cache /tmp/cd-aot ;;  # the first compiles
    aot-make) one aot-make $(left 240) -X faulthandler evals/aot_load.py make --cache /tmp/cd-aot ;;  # one package per kind of block
    aot-load) one aot-load 90 -X faulthandler evals/aot_load.py load --cache /tmp/cd-aot
              one aot-load2 90 -X faulthandler evals/aot_load.py load --cache /tmp/cd-aot ;;
    aot-make-th) one aot-make-th $(left 240) -X faulthandler evals/aot_load.py make --cache /tmp/cd-aot --thread ;;
    aot-load-nd) one aot-load-nd 90 -X faulthandler evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen ;;
    aot-load-th) one aot-load-th 90 -X faulthandler evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen --thread ;;
    aot-gdb) # the C++ stack of the crash: cuda-gdb also debugs host code (the image has no gdb); randomisation
             # stays on, as in a plain run
             echo "== aot-gdb $(date +%T)"; t=$SECONDS
             timeout $(left 150) cuda-gdb -q -batch -ex "set pagination off" -ex "set confirm off" \
               -ex "set disable-randomization off" -ex run -ex "bt 40" -ex "info sharedlibrary" \
               --args python3 evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen --out /tmp/gdb.json \
               > "$OUT/gdb.txt" 2>&1; echo "rc=$? $((SECONDS - t)) s"
             grep -n -A45 "SIGSEGV\|signal SIG" "$OUT/gdb.txt" | head -80 ;;
    aot-why) # what a bare process lacks that a film has (the crash is in the package's std::regex, parse_device_str)
             { echo "== aot-why $(date +%T)"; g++ --version | head -1
               python3 -c "import torch, torch._inductor.config as c; print('cxx', c.cpp.cxx, 'abi', torch._C._GLIBCXX_USE_CXX11_ABI)"
               strings /lib/x86_64-linux-gnu/libstdc++.so.6 | grep -E '^GLIBCXX_3[.]4[.][0-9]+$' | sort -V | tail -1
               tl=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))")/lib
               ls -la /lib/x86_64-linux-gnu/libstdc++.so.6* $tl | grep -i "stdc\|gomp\|global_deps"
               rm -rf /tmp/pk && mkdir /tmp/pk && p=$(ls /tmp/cd-aot/aot/*.pt2 | head -1) && (cd /tmp/pk && python3 -m zipfile -e "$p" .)
               so=$(find /tmp/pk -name "*.so" | head -1); readelf -d "$so" | grep -E "NEEDED|FLAGS|SYMBOLIC"; readelf -p .comment "$so" | head -5
               readelf -p .comment $tl/libtorch_cpu.so | head -4
               for f in "$so" $tl/libtorch_cpu.so $tl/libtorch_global_deps.so $tl/libtorch_python.so; do
                 echo "$f: $(nm -D --defined-only "$f" 2>/dev/null | c++filt | grep -c 'regex_traits<char>::transform_primary\|_BracketMatcher<std::__cxx11::regex_traits<char>, false, false>::_M_apply')"; done
               echo "compiler's libstdc++: $(g++ -print-file-name=libstdc++.so.6) -> $(readlink -f "$(g++ -print-file-name=libstdc++.so.6)")"
               ldd "$so" | grep -i "stdc\|torch"; ldd "$(readlink -f "$(which python3)")" | head -8
             } >> "$OUT/log.txt" 2>&1
             LD_DEBUG=bindings timeout 60 python3 evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen 2>&1 >/dev/null \
               | grep -a "wrapper.so" | grep -a -i "regex\|facet\|locale\|collate\|ctype\|_Compiler" | c++filt | head -300 > "$OUT/bindings.txt"
             echo "bindings: $(wc -l < "$OUT/bindings.txt") lines"
             one aot-load-warm 90 evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen --warm
             one aot-load-imp 90 evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen --warm --imports diffusers,transformers,av,cv2,PIL.Image,langgraph.graph
             LD_PRELOAD=$(readlink -f "$(g++ -print-file-name=libstdc++.so.6)") one aot-load-pre 90 evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen
             TORCH_USE_RTLD_GLOBAL=1 one aot-load-rg 90 evals/aot_load.py load --cache /tmp/cd-aot --no-dlopen ;;
    run-aot-ld) # the film's bindings of the package's std::regex code, to set beside aot-why's bare process
             rm -f /tmp/ldfilm.*; LD_DEBUG=bindings LD_DEBUG_OUTPUT=/tmp/ldfilm one run-aot-ld $(left ${AOT_CAP:-120}) $C run --folder $W --compile-aot --compile-cache /tmp/cd-aot
             du -shc /tmp/ldfilm.* | tail -1; grep -a -h "wrapper.so" /tmp/ldfilm.* | grep -a -i "regex\|facet\|locale\|collate\|ctype\|_Compiler" | c++filt | head -600 > "$OUT/bindings_film.txt"
             echo "film bindings: $(wc -l < "$OUT/bindings_film.txt") lines"; rm -f /tmp/ldfilm.* ;;
    aot-keep) ls -la /tmp/cd-aot/aot >> "$OUT/log.txt" 2>&1; mkdir -p "$OUT/aot" && cp /tmp/cd-aot/aot/*.pt2 /tmp/cd-aot/aot/inputs.json "$OUT/aot/" 2>/dev/null; cat /tmp/cd-aot/aot/*.failed >> "$OUT/log.txt" 2>/dev/null ;;
    run-trace) one run-trace $(left 120) $C run --folder $W --trace ;;              # preload on (the default)
    run-trace-np) one run-trace-np $(left 120) $C run --folder $W --no-preload ;;   # agent.director.PRELOAD off
    run-trace-ns) one run-trace-ns $(left 120) $C run --folder $W --no-stage ;;     # tools.weight_stage.STAGE off
    run-graph) one run-graph $(left 120) $C run --folder $W --trace --cuda-graphs ;;  # eager bf16 + CUDA graphs
    img-graph) one img-graph $(left 200) -m evals.bench_gpu --zimage --variants plain,graph --batches 1,4 --repeats 3 ;;
    stage) one stage 120 $C stage --folder $W ;;                                     # copies during the imports
    run-trace-par) one run-trace-par $(left 120) $C run --folder $W --trace --env HF_ENABLE_PARALLEL_LOADING=yes ;;
    pyc) # Does the image ship bytecode for its own packages? It sets PYTHONDONTWRITEBYTECODE, so without .pyc
         # files every process compiles torch._dynamo, sympy, sklearn ... again. A user's pip install writes
         # them; this step gives later steps of the call a bytecode cache (/tmp/pyc) as such an install has.
         python3 -c "import torch, os, glob, sys; d = os.path.dirname(torch.__file__); print('pyc in torch/_dynamo:', len(glob.glob(d + '/_dynamo/__pycache__/*.pyc')), 'py:', len(glob.glob(d + '/_dynamo/*.py')), sys.version.split()[0])" >> "$OUT/log.txt" 2>&1
         unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc
         for i in 1 2 3; do /usr/bin/time -f "imports with a bytecode cache, run $i: %e s" python3 -c "import torch, diffusers; from diffusers import ZImagePipeline; from transformers import Qwen3Model" >> "$OUT/log.txt" 2>&1; done ;;
    imports) python3 -X importtime -c "import torch, diffusers, transformers; from diffusers import ZImagePipeline; from transformers import Qwen3Model" 2> /tmp/imp.txt
             { echo "== importtime, top cumulative (us)"; sort -t'|' -k2 -n -r /tmp/imp.txt | head -30; } >> "$OUT/log.txt"
             for i in 1 2; do /usr/bin/time -f "import torch+diffusers+ZImagePipeline+Qwen3Model: %e s" python3 -c "import torch, diffusers; from diffusers import ZImagePipeline; from transformers import Qwen3Model" >> "$OUT/log.txt" 2>&1; done
             /usr/bin/time -f "python3 main.py --help: %e s" python3 main.py --help > /dev/null 2>> "$OUT/log.txt" ;;
    img-cc) one img-cc 150 $F --what images --compile --repeats 1 --compile-cache $CACHE ;;
    why) for d in /tmp/cold-run-*/film; do echo "== $d"; ls "$d" "$d"/shots/* 2>&1 | head -20
           cat "$d"/error.log 2>/dev/null | tail -60; cp "$d"/error.log "$OUT"/error.log 2>/dev/null
           grep -h -o '"error": *"[^"]*"' "$d"/*.json "$d"/shots/*/*.json 2>/dev/null | sort | uniq -c | head; done ;;
    worker) one worker 150 $C worker --folder $W --films 2 --compile --compile-cache $CACHE ;;
    worker-plain) one worker-plain 150 $C worker --folder $W --films 2 ;;
    film-fp8s) one film-fp8s $(left ${FILM_CAP:-420}) $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 --sample-stacks ;;
    img1-fp8|img2-fp8) one $step $(left ${IMG_CAP:-200}) $F --what images --compile --quantize fp8 --compile-cache /tmp/cd-cc8 --repeats 3 ;;
    steps) lim=$(left ${STEPS_CAP:-200}); one steps $lim -m evals.bench_gpu --what steps --variants ${STEP_VARIANTS:-fp8} --budget-s $(( lim - 45 )) --compile-cache /tmp/cd-cc8 ${STEP_ARGS:-} ;;
    attn) one attn 90 evals/bench_fp8_attention.py; one attn-b4 60 evals/bench_fp8_attention.py --batch 4 ;;
    film-ltx) one film-ltx $(left ${LTX_CAP:-300}) $F --what films --video ltx ;;
    film-graph) one film-graph $(left ${FILM_CAP:-420}) $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 --cuda-graphs ;;
    film-attn) one film-attn $(left ${FILM_CAP:-420}) $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 --cuda-graphs --attention fp8 ;;
    film-fp8) one film-fp8 $(left ${FILM_CAP:-420}) $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 ;;
    run-fp8) one run-fp8 $(left 240) $C run --folder $W --compile --quantize fp8 --compile-cache /tmp/cd-cc8 ;;
    img-fp8) TORCHINDUCTOR_CACHE_DIR=/tmp/cd-cc8 one img-fp8 $(left 300) -m evals.bench_gpu --zimage --variants ${VARIANTS:-fp8,fp8-cl} --batches 1,4 --repeats 3 ;;
    keep) ls -la /tmp/cd-cc8 2>/dev/null; du -sh /tmp/cd-cc8 2>/dev/null
          f=/tmp/cd-cc8/compile_artifacts.bin; [ -f $f ] && xz -T4 -6 -c $f > "$OUT"/compile_artifacts_fp8.bin.xz && echo "kept $f"
          f=/tmp/cd-cc/compile_artifacts.bin; [ -f $f ] && xz -T4 -6 -c $f > "$OUT"/compile_artifacts_bf16.bin.xz && echo "kept $f" ;;
    cat[fgh]-*) n=${step#cat?-}; extra=CAT$(echo ${step:3:1} | tr a-z A-Z)_ARGS  # CATF_ARGS, CATG_ARGS, CATH_ARGS
          one "$step" $(left ${CAT_CAP:-480}) evals/bench_catalogue_gpu.py --mode local --units $n --compile --quantize fp8 --compile-cache /tmp/cd-cc8 --verbose ${!extra:-} ;;
    fp8-1) one fp8-1 $(( ${BUDGET:-585} - SECONDS )) $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 ;;
    fp8-2) one fp8-2 300 $F --what films --compile --quantize fp8 --compile-cache /tmp/cd-cc8 ;;
    cat-*) n=${step#cat-}; one "$step" 580 evals/bench_catalogue_gpu.py --mode local --units $n --compile --compile-cache $CACHE ;;
  esac
done
grep -h '"step"' "$OUT/results.jsonl" | cut -c1-600
