"""Convert the official MAE ViT file (e.g. mae_pretrain_vit_base.pth) to an
mmpretrain checkpoint: python tools/model_converters/mae2mmpretrain.py SRC DST
"""

import lspt_mm  # noqa: F401
from lspt_mm.models.convert import main

if __name__ == '__main__':
    main('mae', __doc__)
