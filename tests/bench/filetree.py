"""Build a tree of many empty files, for the file-event benchmark (issue #18).

    python tests/bench/filetree.py /tmp/irkit-filetree --files 1000000 [--fanout 100]

Empty regular files (``mknod``: one system call each, no data blocks) in nested folders,
``fanout`` entries a folder: 1,000,000 files at fanout 100 are 100 × 100 folders of 100
files, ``d00/d00/f000000``…; every file is one inode and 4 file events (modified,
accessed, changed, created). A tree already complete (same count, as the marker
``ROOT.complete`` beside it says) is kept; anything else there is refused, never deleted.
Needs free inodes: ``df -i`` the file system first.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from pathlib import Path

MARKER = ".complete"


def layout(files: int, fanout: int) -> list[tuple[str, int, int]]:
    """(folder, first file number, file count) for every leaf folder, in order."""
    depth = 1
    while fanout**depth < max(1, -(-files // fanout)):
        depth += 1
    leaves = []
    number = 0
    leaf = 0
    width = len(str(fanout - 1))
    while number < files:
        parts = []
        rest = leaf
        for _ in range(depth):
            rest, digit = divmod(rest, fanout)
            parts.append(f"d{digit:0{width}d}")
        count = min(fanout, files - number)
        leaves.append((os.path.join(*reversed(parts)), number, count))
        number += count
        leaf += 1
    return leaves


def build(root: Path, files: int, fanout: int) -> dict[str, object]:
    """Create the tree (or keep a complete one); returns what it holds."""
    want = {"files": files, "fanout": fanout}
    marker = root.with_name(root.name + MARKER)
    if marker.exists() and root.is_dir() and json.loads(marker.read_text()).get("files") == files:
        return {**json.loads(marker.read_text()), "kept": True}
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists and is not a complete tree of {files} files: remove it")
    marker.unlink(missing_ok=True)  # a marker left by a tree since deleted
    vfs = os.statvfs(root.parent if not root.exists() else root)
    if vfs.f_favail and vfs.f_favail < files * 1.1 + 10_000:
        raise SystemExit(f"only {vfs.f_favail:,} free inodes for {files:,} files")
    started = time.perf_counter()
    width = len(str(files - 1))
    mode = stat.S_IFREG | 0o644
    folders = 0
    for folder, first, count in layout(files, fanout):
        path = root / folder
        path.mkdir(parents=True, exist_ok=True)
        folders += 1
        base = str(path)
        for n in range(first, first + count):
            os.mknod(f"{base}/f{n:0{width}d}", mode)
    info = {**want, "leaf_folders": folders, "seconds": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(info))
    return {**info, "kept": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--fanout", type=int, default=100)
    args = parser.parse_args()
    info = build(args.root, args.files, args.fanout)
    print(json.dumps(info), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
