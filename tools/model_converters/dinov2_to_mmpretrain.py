"""Convert a DINOv2 backbone to an mmpretrain checkpoint: an official file
(dinov2_vits14_pretrain.pth, ..._reg4_pretrain.pth) or a Hugging Face
Dinov2Model / Dinov2WithRegistersModel state dict (.safetensors or .bin):
python tools/model_converters/dinov2_to_mmpretrain.py SRC DST
"""

import lspt_mm  # noqa: F401
from lspt_mm.models.convert import main

if __name__ == '__main__':
    main('dinov2', __doc__)
