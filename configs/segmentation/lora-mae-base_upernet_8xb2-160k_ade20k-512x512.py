# Baseline: LoRA through mmpretrain's own LoRAModel (rank 16, alpha 16,
# dropout 0.1 on every qkv projection: mmpretrain's ViT LoRA recipe) on the
# frozen MAE ViT-B/16, with the UPerNet neck and heads; the rest is the
# LSPT recipe. The module is the LSPT config's backbone with
# prompt_method='linear' (= lspt_mm.models.methods.METHODS['lora'].apply(
# <that backbone>, scope='mmseg'); tests check the two agree). Checkpoints
# hold the LoRA tensors only; the frozen ViT comes from `pretrained`.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.LoRAModel',
        alpha=16,
        rank=16,
        drop_rate=0.1,
        targets=[dict(type='qkv')],
        module=dict(
            type='mmpretrain.PromptedViT',
            arch='base',
            img_size=512,
            patch_size=16,
            out_indices=[3, 5, 7, 11],
            out_type='featmap',
            final_norm=False,
            drop_path_rate=0.0,
            prompt_method='linear',
            pretrained='checkpoints/mae_pretrain_vit_base.pth',
            save_trainable_only=True,
        ),
    )
)
