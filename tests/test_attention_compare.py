"""visualize_attention.py with several models on one image: one figure
(two rows per prompted model, one for a model without prompts, chosen
blocks as columns) and one .npz per model equal to its single-model run."""

import numpy as np
import torch
from PIL import Image
from test_analysis_tools import (
    LAYERS,
    SIZE,
    visualize_attention,
    write_config,
    write_image,
)


def test_several_models_one_figure(tmp_path):
    from lspt_mm.analysis.tokens import load_model

    linear = write_config(tmp_path, 'none', 1, name='linear')
    lspt = write_config(tmp_path, 'lspt', 3)
    model, _ = load_model(lspt)
    ckpt = str(tmp_path / 'lspt.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    img = write_image(tmp_path / 'cat.png')
    out = tmp_path / 'out'
    png, npzs = visualize_attention.main(
        [
            linear,
            'none',
            lspt,
            ckpt,
            '--labels',
            'Linear',
            'LSPT',
            '--blocks',
            '1',
            '3',
            '--cell',
            '1',
            '--img',
            img,
            '--out-dir',
            str(out),
        ]
    )
    assert [p.split('/')[-1] for p in npzs] == [
        'attention_cat_Linear.npz',
        'attention_cat_LSPT.npz',
    ]
    # 3 rows (linear: CLS only; LSPT: CLS and prompts) x 2 blocks, 1 inch
    # per map at 100 dpi, plus the label and title margins
    w, h = Image.open(png).size
    assert (w, h) == (int(100 * (2 + 0.9)), int(100 * (3 + 0.6)))
    single, single_npz = visualize_attention.main(
        [lspt, ckpt, '--img', img, '--out-dir', str(tmp_path / 'one')]
    )
    a, b = np.load(npzs[1]), np.load(single_npz)
    assert a['cls_to_patch'].shape == (LAYERS, SIZE // 8, SIZE // 8)
    assert np.allclose(a['prompt_to_patch'], b['prompt_to_patch'])
    assert np.isnan(np.load(npzs[0])['prompt_to_patch']).all()


def test_prompt_token_scales_match_a_hand_computation():
    """prompt_token_scales: norms of X̂_P^l, X^l, mean_i X^l_i and of the
    next prompts, recomputed from the recorded block outputs."""
    import torch

    from lspt_mm.analysis.tokens import (
        prompt_token_scales,
        record_block_outputs,
    )
    from lspt_mm.models import PromptedViT

    torch.manual_seed(0)
    vit = PromptedViT(
        arch=dict(
            embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64
        ),
        img_size=32,
        patch_size=8,
        prompt_method='lspt_gspc_only',
        num_prompts=2,
        prompt_dropout=0.0,
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    scales = prompt_token_scales(vit, x)
    assert scales.shape == (2, 5)
    with record_block_outputs(vit) as outs, torch.no_grad():
        vit(x)
    for k in range(2):
        _, prompts, patches = vit.split_tokens(outs[k])
        mean = patches.mean(1, keepdim=True)
        nxt = prompts + mean  # GSPC only: X_P^l = X̂_P^l + mean_i X^l_i
        want = [
            prompts.norm(dim=-1).mean(),
            patches.norm(dim=-1).mean(),
            mean.norm(dim=-1).mean(),
            nxt.norm(dim=-1).mean(),
            nxt.abs().max(),
        ]
        assert np.allclose(scales[k], torch.stack(want).numpy(), rtol=1e-5)
    assert 'next_prompts' not in vit.prompt_method.__dict__  # restored
