"""The critics, one file each: technical, ocr, clip, vlm and motion (clips). `tools/critique.py` runs them and
grades a take; `inputs.py` holds what every critic is given (the request, the thresholds, the config)."""
