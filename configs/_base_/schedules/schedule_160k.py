# 160k iterations, batch 16 in total (8 GPUs x 2), iteration-based.
#
# Optimiser (choice, not from a paper): AdamW, lr 1e-4, weight decay 0.01,
# 1500 warm-up iterations, then linear (poly, power 1) decay to 0 -- the
# schedule shape of mmseg's MAE ADE20K recipe. Why AdamW for a frozen
# backbone: the parameters that train are of two very different kinds, prompt
# tokens (and the LSTM prompt coder / GaPT gates) whose gradients come back
# through 12 frozen blocks, and a randomly initialised UPerNet head; AdamW's
# per-parameter step normalisation lets one lr serve both, where SGD
# (VPT/GaPT's classification recipe) needs a per-task lr sweep. Frozen
# parameters have requires_grad=False: they get no gradient and no optimiser
# state. Prompt tokens, GaPT gates/temperatures and norm/bias parameters get
# no weight decay (decay would pull the prompts towards zero).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01
    ),
    clip_grad=None,
    constructor='PromptTuningOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'prompt_method.prompts': dict(decay_mult=0.0),
            'prompt_method.gate_logits': dict(decay_mult=0.0),
            'prompt_method.temperatures': dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500
    ),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False,
    ),
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=160000, val_interval=16000
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# base batch size for --auto-scale-lr (8 GPUs x 2 images)
auto_scale_lr = dict(enable=False, base_batch_size=16)
