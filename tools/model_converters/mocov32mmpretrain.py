"""Convert an official MoCo v3 ViT file (linear-vit-b-300ep.pth.tar, or a
pretraining checkpoint with module.base_encoder.*) to an mmpretrain
checkpoint: python tools/model_converters/mocov32mmpretrain.py SRC DST
"""

import lspt_mm  # noqa: F401
from lspt_mm.models.convert import main

if __name__ == '__main__':
    main('mocov3', __doc__)
