"""Tiny random pipelines of every diffusers class the project uses, saved to folders with `save_pretrained`.

Each builder makes the REAL classes (ZImageTransformer2DModel, Qwen3Model, AutoencoderKLWan, ...) from small
configs in the spirit of diffusers' own `get_dummy_components` (dim 16-32, one or two layers), with tokenizers
built here from nothing (a byte-level BPE `Qwen2Tokenizer` with a chat template, a small unigram
`T5Tokenizer`): nothing is fetched from a hub. The saved folder has a `model_index.json`, so the project loads
it through exactly the code that loads a real model id.

    path = build("z-image", tmp_path / "zimage")   # -> str folder
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evals.tokenizers import QWEN_CHAT_TEMPLATE, qwen_tokenizer, t5_tokenizer


def _qwen3_text_encoder(vocab_size: int, hidden: int = 16):
    from transformers import Qwen3Config, Qwen3Model

    cfg = Qwen3Config(
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=vocab_size,
        max_position_embeddings=512,
    )
    return Qwen3Model(cfg)


def _z_image_transformer(siglip_feat_dim: int | None = None):
    import torch
    from diffusers import ZImageTransformer2DModel

    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=16,
        siglip_feat_dim=siglip_feat_dim,
        axes_dims=[8, 4, 4],
        axes_lens=[1024, 32, 32],
    )
    # The pad tokens start as torch.empty: fix them so saved weights hold no NaN garbage.
    with torch.no_grad():
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
        if getattr(transformer, "siglip_pad_token", None) is not None:
            transformer.siglip_pad_token.fill_(1.0)
    return transformer


def _z_image_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        block_out_channels=[32, 32],
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=32,
        sample_size=32,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )


def build_z_image(path: Path) -> None:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    torch.manual_seed(0)
    tok = qwen_tokenizer()
    pipe = ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_z_image_vae(),
        text_encoder=_qwen3_text_encoder(len(tok)),
        tokenizer=tok,
        transformer=_z_image_transformer(),
    )
    pipe.save_pretrained(path)


def build_z_image_omni(path: Path) -> None:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImageOmniPipeline
    from transformers import Siglip2ImageProcessor, Siglip2VisionConfig, Siglip2VisionModel

    torch.manual_seed(0)
    tok = qwen_tokenizer()
    siglip = Siglip2VisionModel(
        Siglip2VisionConfig(
            hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, patch_size=16
        )
    )
    pipe = ZImageOmniPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_z_image_vae(),
        text_encoder=_qwen3_text_encoder(len(tok)),
        tokenizer=tok,
        transformer=_z_image_transformer(siglip_feat_dim=16),
        siglip=siglip,
        siglip_processor=Siglip2ImageProcessor(patch_size=16, max_num_patches=64),
    )
    pipe.save_pretrained(path)


def _qwen_vl_text_encoder(tok):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>")}
    cfg = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "vocab_size": len(tok),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        hidden_size=16,
        vocab_size=len(tok),
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        vision_token_id=ids["<|image_pad|>"],
        image_token_id=ids["<|image_pad|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(cfg)


def _qwen_image_parts():
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel

    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    z_dim = 4
    vae = AutoencoderKLQwenImage(
        base_dim=4,
        z_dim=z_dim,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    return transformer, vae, FlowMatchEulerDiscreteScheduler()


def build_qwen_image(path: Path) -> None:
    import torch
    from diffusers import QwenImagePipeline

    torch.manual_seed(0)
    tok = qwen_tokenizer()
    transformer, vae, scheduler = _qwen_image_parts()
    pipe = QwenImagePipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=_qwen_vl_text_encoder(tok),
        tokenizer=tok,
        transformer=transformer,
    )
    pipe.save_pretrained(path)


def build_qwen_image_edit(path: Path) -> None:
    import torch
    from diffusers import QwenImageEditPipeline
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    torch.manual_seed(0)
    tok = qwen_tokenizer()
    transformer, vae, scheduler = _qwen_image_parts()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    pipe = QwenImageEditPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=_qwen_vl_text_encoder(tok),
        tokenizer=tok,
        processor=processor,
        transformer=transformer,
    )
    pipe.save_pretrained(path)


def _t5_encoder(tok, cls_name: str = "T5EncoderModel"):
    import transformers

    config_cls = transformers.UMT5Config if cls_name.startswith("UMT5") else transformers.T5Config
    cfg = config_cls(
        vocab_size=len(tok),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return getattr(transformers, cls_name)(cfg)


def build_ltx_i2v(path: Path) -> None:
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    tok = t5_tokenizer()
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    pipe = LTXImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=_t5_encoder(tok),
        tokenizer=tok,
        transformer=transformer,
    )
    pipe.save_pretrained(path)


def _wan_transformer(in_channels: int, out_channels: int):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def _wan_scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def build_wan_t2v(path: Path) -> None:
    """Wan 2.2 T2V-A14B's shape: two experts (high and low noise) switched at `boundary_ratio`."""
    import torch
    from diffusers import AutoencoderKLWan, WanPipeline

    torch.manual_seed(0)
    tok = t5_tokenizer()
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    pipe = WanPipeline(
        tokenizer=tok,
        text_encoder=_t5_encoder(tok, "UMT5EncoderModel"),
        vae=vae,
        scheduler=_wan_scheduler(),
        transformer=_wan_transformer(16, 16),
        transformer_2=_wan_transformer(16, 16),
        boundary_ratio=0.875,
    )
    pipe.save_pretrained(path)


def build_wan_ti2v(path: Path) -> None:
    """Wan 2.2 TI2V-5B's shape: one transformer, the 48-channel VAE, `expand_timesteps` for image conditioning."""
    import torch
    from diffusers import AutoencoderKLWan, WanPipeline

    torch.manual_seed(0)
    tok = t5_tokenizer()
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    pipe = WanPipeline(
        tokenizer=tok,
        text_encoder=_t5_encoder(tok, "UMT5EncoderModel"),
        vae=vae,
        scheduler=_wan_scheduler(),
        transformer=_wan_transformer(48, 48),
        expand_timesteps=True,
    )
    pipe.save_pretrained(path)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "z-image": build_z_image,
    "z-image-omni": build_z_image_omni,
    "qwen-image": build_qwen_image,
    "qwen-image-edit": build_qwen_image_edit,
    "ltx-i2v": build_ltx_i2v,
    "wan-t2v": build_wan_t2v,
    "wan-ti2v": build_wan_ti2v,
}


def build(name: str, path: str | Path) -> str:
    """Build the tiny pipeline `name` into folder `path` (once) and return the folder as a string."""
    path = Path(path)
    if not (path / "model_index.json").exists():
        BUILDERS[name](path)
    return str(path)
