#!/usr/bin/env python
"""Rewrite the model index (``model-index.yml``, ``configs/*/metafile.yml``)
from the configs git tracks, after adding, renaming or removing one.
Library: ``lspt_mm.model_index.write_model_index``.

    python tools/misc/update_model_index.py
"""

import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
from lspt_mm.model_index import write_model_index  # noqa: E402


def main():
    files = subprocess.run(
        ['git', 'ls-files', 'configs'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for meta in write_model_index(ROOT, files.stdout.split()):
        print(f'wrote {meta}')


if __name__ == '__main__':
    main()
