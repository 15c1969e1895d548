"""`bench_gpu.py --what steps` on tiny models on the CPU: the same code the H200 runs, every path once (the
steps of a variant, the VAE decode variants, batch 4, the attention backends, an error row, the deadline)."""

from __future__ import annotations

import json

from evals.bench_gpu import main


def test_steps_mode_times_each_step_and_notes_what_it_cannot_run(tmp_path, capsys):
    out = tmp_path / "steps.json"
    args = ["--tiny", "--what", "steps", "--variants", "plain", "--repeats", "1", "--out", str(out)]
    assert main([*args, "--attentions", "native,_native_cudnn"]) == 0
    got = json.loads(out.read_text())
    rows = {r["attention"]: r for r in got["rows"] if r["variant"] == "plain"}  # the last row of each wins
    auto = rows["auto"]
    for key in (
        "text_encode_s",
        "text_cached_s",
        "dit_step_s",
        "denoise_loop_s",
        "vae_decode_s",
        "vae_decode_channels_last_s",
        "vae_decode_compiled_s",
        "call_s",
        "call_cached_text_s",
        "call_cached_text_best_decode_s",
        "call_manager_repeated_prompt_s",
        "b4_s_per_image",
        "peak_gib_b1",
        "peak_gib_b4",
    ):
        assert isinstance(auto[key], int | float) and auto[key] >= 0, key
    assert 0 < auto["dit_step_s"] < auto["denoise_loop_s"]
    assert auto["compiled_while_timed"] == 0
    assert rows["native"]["dit_step_s"] > 0
    assert "needs a CUDA GPU" in rows["_native_cudnn"]["error"]
    assert got["skipped"] == []
    table = capsys.readouterr().out
    assert "| plain | auto | one DiT step |" in table and "| plain | _native_cudnn | error |" in table
    # The rows were appended as they came, so a call killed at its limit keeps them.
    assert (tmp_path / "steps.jsonl").read_text().count("Z-Image-Turbo steps") == len(got["rows"])


def test_steps_mode_skips_what_does_not_fit_the_budget(tmp_path, capsys):
    out = tmp_path / "steps.json"
    main(["--tiny", "--what", "steps", "--variants", "plain,fp8", "--budget-s", "0", "--out", str(out)])
    got = json.loads(out.read_text())
    assert got["rows"] == []
    assert [s["variant"] for s in got["skipped"]] == ["plain", "fp8"]
    assert "s left" in got["skipped"][0]["skipped"]
    assert "skipped:" in capsys.readouterr().out
