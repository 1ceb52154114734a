"""Issue 19, case 6: an unreadable image (zero bytes, not an image) in a
classification list is named with its list entry, and the ADE20K checker
lists it with the other faults instead of crashing."""

import os.path as osp
import sys

import pytest

import lspt_mm  # noqa: F401
from lspt_mm.datasets import FGVC
from lspt_mm.datasets.ade20k.__main__ import main as check_main
from lspt_mm.datasets.errors import DataFileError

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from fault_cases import REPO, make_small_cub  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
from make_synthetic_ade20k import make_synthetic_ade20k  # noqa: E402

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


@pytest.mark.parametrize(
    'content, reason',
    [
        (b'', 'empty file (0 bytes)'),
        (b'<html>not found</html>', 'not a decodable image'),
    ],
)
def test_unreadable_image_in_a_classification_list_is_named(
    tmp_path, content, reason
):
    # mmpretrain's pipeline (an earlier test may have left mmseg's scope)
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        _unreadable_image_is_named(tmp_path, content, reason)


def _unreadable_image_is_named(tmp_path, content, reason):
    root = osp.join(make_small_cub(tmp_path), 'CUB_200_2011')
    ds = FGVC(
        data_root=root,
        name='cub',
        split='train',
        num_classes=4,
        pipeline=PIPELINE,
    )
    info = ds.get_data_info(3)
    with open(info['img_path'], 'wb') as f:
        f.write(content)
    ds[2]  # the others still load
    with pytest.raises(DataFileError) as exc:
        ds[3]
    msg = str(exc.value)
    assert repr(info['img_path']) in msg and reason in msg
    rel = osp.relpath(info['img_path'], osp.join(root, 'images'))
    assert f'list entry {osp.join(root, "train.json")}: entry {rel!r}' in msg
    # on_error='skip': a warning, and another sample comes instead
    skip = FGVC(
        data_root=root,
        name='cub',
        split='train',
        num_classes=4,
        pipeline=PIPELINE,
        on_error='skip',
    )
    assert skip[3]['data_samples'].img_path != info['img_path']


def test_ade20k_checker_lists_unreadable_images(tmp_path, capsys):
    root = make_synthetic_ade20k(
        str(tmp_path), num_train=3, num_val=1, min_size=32, max_size=40
    )
    empty = osp.join(root, 'images', 'training', 'ADE_train_00000001.jpg')
    text = osp.join(root, 'images', 'training', 'ADE_train_00000002.jpg')
    open(empty, 'wb').close()
    with open(text, 'w') as f:
        f.write('version https://git-lfs.github.com/spec/v1\n')
    assert check_main([root]) == 1
    out = capsys.readouterr().out
    assert f'{empty}: unreadable image (empty file (0 bytes))' in out
    assert f'{text}: unreadable image (not a decodable image)' in out
    assert '2 problem(s) found' in out
