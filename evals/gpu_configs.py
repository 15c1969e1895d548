"""The published architectures the GPU benchmarks build with random weights: their configs, and tiny ones.

Copied from the models' config.json files (Tongyi-MAI/Z-Image-Turbo, Wan-AI/Wan2.2-TI2V-5B-Diffusers, the
UMT5-XXL and T5-XXL text encoders); LTX-Video 0.9.x uses its classes' defaults, which are the 2B model's. TINY
holds configs of the same classes small enough for a CPU (checks of the scripts, not of speed).
"""

from __future__ import annotations

# Published configs (Tongyi-MAI/Z-Image-Turbo transformer/, text_encoder/ (Qwen3-4B), vae/).
ZIMAGE_DIT = dict(
    all_patch_size=(2,),
    all_f_patch_size=(1,),
    in_channels=16,
    dim=3840,
    n_layers=30,
    n_refiner_layers=2,
    n_heads=30,
    n_kv_heads=30,
    norm_eps=1e-5,
    qk_norm=True,
    cap_feat_dim=2560,
    rope_theta=256.0,
    t_scale=1000.0,
    axes_dims=[32, 48, 48],
    axes_lens=[1536, 512, 512],
)
QWEN3_4B = dict(
    hidden_size=2560,
    intermediate_size=9728,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151936,
    max_position_embeddings=40960,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
)
FLUX_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    sample_size=1024,
)
# Wan-AI/Wan2.2-TI2V-5B-Diffusers transformer/ and vae/; UMT5-XXL text encoder.
WAN5B_DIT = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=24,
    attention_head_dim=128,
    in_channels=48,
    out_channels=48,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=14336,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
WAN22_VAE = dict(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    in_channels=12,
    out_channels=12,
    is_residual=True,
    patch_size=2,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    scale_factor_spatial=16,
    scale_factor_temporal=4,
    temperal_downsample=[False, True, True],
    latents_mean=[0.0] * 48,
    latents_std=[1.0] * 48,
)
UMT5_XXL = dict(
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
)
T5_XXL = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
)
# Lightricks/LTX-Video 0.9.x: the transformer and VAE classes' defaults are the 2B model's.

TINY = dict(
    zimage_dit=dict(
        ZIMAGE_DIT,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=16,
        axes_dims=[8, 4, 4],
        axes_lens=[1024, 32, 32],
    ),
    qwen3=dict(
        QWEN3_4B,
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=300,
    ),
    flux_vae=dict(
        FLUX_VAE,
        block_out_channels=[32, 32],
        layers_per_block=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    ),
    wan_dit=dict(
        WAN5B_DIT,
        num_attention_heads=2,
        attention_head_dim=12,
        text_dim=32,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
    ),
    wan_vae=dict(WAN22_VAE, base_dim=3, decoder_base_dim=None, dim_mult=[1, 1, 1, 1], num_res_blocks=1),
    t5=dict(T5_XXL, vocab_size=200, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4),
    ltx_dit=dict(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    ),
    ltx_vae=dict(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False,) * 4,
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
    ),
)
