# SPT's published recipe (Wang et al., "Revisiting the Power of Prompt for
# Visual Tuning", ICML 2024; github.com/WangYZ1608/Self-Prompt-Tuning,
# README and train_MAE.py / train.py): AdamW, weight decay 1e-2 on the
# prompts, none on biases and 1-D tensors, a separate weight decay on the
# head's weight (0.5 MAE, 3.0 MoCo v3), lr 5e-2 (MAE) / 1e-3 (MoCo v3) at
# batch 32 (total; not scaled), 100 epochs, 10 linear warm-up epochs from 0,
# then half-cycle cosine to 1e-8, EMA of the weights (timm ModelEmaV2, decay
# 0.9999: EMAHook with momentum 1 - 0.9999; in the mmpretrain scope that is
# mmpretrain's subclass of mmengine's EMAHook, which validates and tests on
# the EMA weights and saves them as the checkpoint's state_dict).
# Used by configs/classification/prompt_init/spt-*.py as whole values:
#   optim_wrapper = _base_.spt_optim_wrapper_mae   (or _mocov3)
#   param_scheduler = _base_.spt_param_scheduler
#   custom_hooks = _base_.custom_hooks + [_base_.spt_ema_hook]
# (names of their own: the benchmark configs these sit next to define
# optim_wrapper / param_scheduler / custom_hooks already).
# Differences from the official code, by choice: the EMA weights are
# evaluated and saved (the official scripts validate the raw model and
# store the EMA copy beside it); the head is mmpretrain's
# LinearClsHead (init normal std 0.01; SPT: trunc-normal std 0.02).


def _spt_optim_wrapper(lr, head_weight_decay, weight_decay=1e-2):
    return dict(
        _delete_=True,  # replaces the benchmark config's SGD
        type='OptimWrapper',
        constructor='PromptTuningOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=lr, weight_decay=weight_decay),
        paramwise_cfg=dict(
            # SPT's param_groups_weight_decay: no decay on ndim <= 1 / bias
            bias_decay_mult=0.0,
            norm_decay_mult=0.0,
            flat_decay_mult=0.0,
            # the head's weight (LinearClsHead: head.fc.weight) has its own
            custom_keys={
                'head.fc.weight': dict(
                    decay_mult=head_weight_decay / weight_decay
                )
            },
        ),
    )


spt_optim_wrapper_mae = _spt_optim_wrapper(lr=5e-2, head_weight_decay=0.5)
spt_optim_wrapper_mocov3 = _spt_optim_wrapper(lr=1e-3, head_weight_decay=3.0)
spt_param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=1e-8,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True,
    ),
]
spt_batch_size = 32
# SPT's EMA of the weights, after the runtime's custom_hooks:
#   custom_hooks = _base_.custom_hooks + [_base_.spt_ema_hook]
spt_ema_hook = dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')
