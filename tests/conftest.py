"""Test setup: never touch a model hub, never wait on a network."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Settings read CD_* variables; a developer's own environment must not leak into tests.
for key in list(os.environ):
    if key.startswith("CD_") or key == "OPENAI_API_KEY":
        del os.environ[key]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
