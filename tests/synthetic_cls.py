"""Test helpers for classification: the synthetic data generators (now in
the library, ``lspt_mm.datasets.synthetic``; re-exported here for the tests
that import them from this module) and ``--cfg-options`` that shrink a
classification config to a tiny model."""

from lspt_mm.datasets.synthetic import (  # noqa: F401
    FGVC_MAKERS,
    PALETTE,
    make_cars,
    make_cub,
    make_dogs,
    make_flowers,
    make_vtab,
    save_image,
    write_json,
)


# ----------------------------------------------------------- tiny overrides
def tiny_cfg_options(
    benchmark, epochs=4, size=32, num_classes=None, batch_size=16, lr=None
):
    """``--cfg-options`` that shrink a classification config to a tiny,
    randomly initialised ViT on ``size`` px inputs, CPU-friendly loaders and
    an ``epochs``-long schedule (1 warm-up epoch, then cosine)."""
    opts = {
        # _delete_: replace the base's arch='base' by this dict
        'model.backbone.arch': dict(
            _delete_=True,
            embed_dims=32,
            num_layers=2,
            num_heads=2,
            feedforward_channels=64,
        ),
        'model.backbone.img_size': size,
        'model.backbone.patch_size': 8,
        'model.backbone.pretrained': None,
        'model.head.in_channels': 32,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'param_scheduler.0.end': 1,
        'param_scheduler.1.begin': 1,
        'param_scheduler.1.end': epochs,
        'param_scheduler.1.T_max': epochs - 1,
        'default_hooks.checkpoint.interval': epochs,
        'default_hooks.logger.interval': 5,
    }
    loaders = ['train_dataloader', 'test_dataloader']
    if benchmark == 'fgvc':
        loaders.append('val_dataloader')
    for loader in loaders:
        opts[f'{loader}.batch_size'] = batch_size
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
        pipe = f'{loader}.dataset.pipeline'
        if benchmark == 'fgvc':
            opts[f'{pipe}.1.scale'] = size + size // 8
            opts[f'{pipe}.2.crop_size'] = size
        else:
            opts[f'{pipe}.1.scale'] = (size, size)
    if num_classes is not None:
        opts['model.head.num_classes'] = num_classes
        opts['data_preprocessor.num_classes'] = num_classes
        for loader in loaders:
            opts[f'{loader}.dataset.num_classes'] = num_classes
    if lr is not None:
        opts['optim_wrapper.optimizer.lr'] = lr
    return opts


def as_cli(opts):
    """The ``--cfg-options`` command-line words for ``opts`` (dict values
    become one ``key.sub=value`` word per entry)."""

    def fmt(v):
        if isinstance(v, tuple):
            return '(' + ','.join(fmt(x) for x in v) + ')'
        return str(v)

    words = []
    for k, v in opts.items():
        if isinstance(v, dict):
            words += as_cli({f'{k}.{sub}': x for sub, x in v.items()})
        else:
            words.append(f'{k}={fmt(v)}')
    return words
