#!/bin/bash
# Build the folder the GPU benchmarks carry to the device machine (evals/gpu_device.sh unpacks it there): the
# Python 3.12 wheels the device image lacks, unpacked into one site.tar.xz, and this checkout's code.
#   bash evals/gpu_payload.sh film build/gpu    # a film: PyAV and imageio-ffmpeg for the cut, no rapidocr (OCR)
#   bash evals/gpu_payload.sh cat build/gpucat  # a catalogue without --video: rapidocr, no PyAV, no imageio-ffmpeg
#   bash evals/gpu_payload.sh video build/gpuvid # PyAV and imageio-ffmpeg alone: EXTRA= on top of `cat`, on a
#                                                # machine still warm from a call that installed it
#   bash evals/gpu_payload.sh code build/gpu   # only refresh code.tar.gz (do this before every call)
# The carry limit is 64 MiB, so the CJK font is cut to the glyphs this project's own files use (Latin and the
# Chinese of its prompts, presets and benchmarks); and packages the device image already holds are left out
# (KINDS.md lists them: torch, numpy, Pillow, OpenCV, onnxruntime, huggingface-hub, transformers, ...).
set -euo pipefail
what=${1:?film, cat, video or code}
dest=$(realpath -m "${2:?destination folder}")
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dest"
(cd "$root" && git ls-files -co --exclude-standard | grep -v '^build/' | tar -czf "$dest/code.tar.gz" -T -)
echo "code: $(du -h "$dest/code.tar.gz" | cut -f1)"
[ "$what" = code ] && exit 0

wheels=${WHEELS:-/tmp/cd-wheels}
mkdir -p "$wheels"
plat=()
for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 \
    manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  plat+=(--platform "$p")
done
# omegaconf (rapidocr's) needs antlr4-python3-runtime 4.9, published only as a source archive: build it here.
ls "$wheels"/antlr4_python3_runtime-4.9.3-*.whl > /dev/null 2>&1 ||
  python3 -m pip wheel -q --no-deps antlr4-python3-runtime==4.9.3 -w "$wheels"
need=(diffusers==0.42.1 langgraph==1.2.12 langgraph-checkpoint-sqlite==3.1.2 openai==3.22.1 "pydantic>=2.11,<3"
  "pydantic-settings>=2.10,<3" rapidocr==3.10.0 manimgx-fonts-cjk==2026.9.26.post1 openpyxl==3.1.5 torchao==0.17.0
  nvidia-cudnn-frontend==1.14.1)
[ "$what" != cat ] && need+=(av==17.0.0 imageio-ffmpeg==0.6.0)
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  --find-links "$wheels" -d "$wheels" "${need[@]}"

# what the device image already has (KINDS.md, "Python packages already there"): never carried
have="opencv_python_headless onnxruntime numpy pillow hf_xet protobuf charset_normalizer filelock fsspec packaging
urllib3 anyio certifi click tqdm httpcore httpx requests idna typing_extensions h11 flatbuffers six zipp xxhash
safetensors huggingface_hub regex pyyaml jinja2 markupsafe"
keep=()
for w in "$wheels"/*.whl; do
  name=$(basename "$w" | cut -d- -f1 | tr '[:upper:]' '[:lower:]')
  case " $(echo $have) " in *" $name "*) continue ;; esac
  case $what:$name in  # the three sets together are over the carry limit
    cat:av|cat:imageio_ffmpeg) continue ;;
    film:rapidocr|film:pyclipper|film:shapely|film:omegaconf|film:antlr4_python3_runtime|film:colorlog) continue ;;
    video:av|video:imageio_ffmpeg) ;;
    video:*) continue ;;
  esac
  keep+=("$w")
done
stage=$(mktemp -d)
python3 -m pip install -q --no-deps --no-compile --no-index --target "$stage" --python-version 3.12 \
  --implementation cp "${plat[@]}" --only-binary=:all: "${keep[@]}"

# the font, cut to the characters in this project's files (fontTools keeps every face of the collection)
[ "$what" = video ] || python3 - "$root" "$stage" <<'EOF'
import pathlib, sys
from fontTools.subset import Options, Subsetter
from fontTools.ttLib import TTCollection

root, stage = map(pathlib.Path, sys.argv[1:])
chars = {chr(c) for c in range(0x20, 0x250)} | set("¥€£…—–“”‘’•·、。，：；！？（）《》【】")
for path in root.rglob("*"):
    if path.suffix in {".py", ".yaml", ".j2", ".txt", ".md", ".csv", ".jsonl", ".json"} and ".venv" not in path.parts:
        try:
            chars |= {c for c in path.read_text(encoding="utf-8") if ord(c) > 0x2E80}
        except (UnicodeDecodeError, OSError):
            pass
font = next(stage.glob("manimgx_fonts_cjk/*.ttc"))
collection = TTCollection(str(font))
for face in collection.fonts:
    sub = Subsetter(Options())
    sub.populate(text="".join(sorted(chars)))
    sub.subset(face)
collection.save(str(font))
print(f"font: {len(chars)} characters, {font.stat().st_size / 1e6:.1f} MB")
EOF
rm -rf "$stage"/bin
tar -cJf "$dest/site.tar.xz" -C "$stage" .
rm -rf "$stage"
du -sh "$dest"/*
