"""A self-contained SVG flame graph from collapsed stacks (no script, no fonts).

Widths are sample counts; the root is at the bottom; each box's tooltip
(``<title>``) gives the frame, its samples and its share. Boxes narrower than
``MIN_WIDTH_PX`` are left out, as in flamegraph.pl.
"""
from __future__ import annotations

import zlib
from html import escape

WIDTH_PX = 1200
ROW_PX = 16
MIN_WIDTH_PX = 0.3
CHAR_PX = 6.5


class _Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.children: dict = {}


def _tree(text: str) -> _Node:
    root = _Node("all")
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        node = root
        node.count += n
        for frame in stack.split(";"):
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node(frame)
            child.count += n
            node = child
    return root


def _color(name: str) -> str:
    h = zlib.crc32(name.encode("utf-8", "replace"))
    if name.startswith(("process ", "thread ")):
        return f"rgb({180 + h % 40},{180 + h % 40},{200 + h % 40})"
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 130},{(h >> 16) % 55})"


def flamegraph_svg(text: str, title: str = "flame graph") -> str:
    root = _tree(text)
    total = root.count or 1
    scale = WIDTH_PX / total
    boxes: list = []
    depth_max = 0
    stack = [(root, 0.0, 0)]
    while stack:
        node, x, depth = stack.pop()
        w = node.count * scale
        if w < MIN_WIDTH_PX:
            continue
        depth_max = max(depth_max, depth)
        boxes.append((node, x, depth, w))
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            stack.append((child, cx, depth + 1))
            cx += child.count * scale
    height = (depth_max + 1) * ROW_PX + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX + 20}" '
           f'height="{height}" font-family="monospace" font-size="11">',
           '<rect width="100%" height="100%" fill="#fafafa"/>',
           f'<text x="10" y="20" font-size="14">{escape(title)} ({root.count} samples)</text>']
    for node, x, depth, w in boxes:
        y = height - (depth + 1) * ROW_PX - 4
        share = node.count / total * 100
        label = escape(f"{node.name} ({node.count} samples, {share:.1f}%)")
        out.append(f'<g><title>{label}</title><rect x="{x + 10:.1f}" y="{y}" '
                   f'width="{w:.1f}" height="{ROW_PX - 1}" fill="{_color(node.name)}" rx="1"/>')
        chars = int((w - 4) / CHAR_PX)
        if chars >= 3:
            name = node.name if len(node.name) <= chars else node.name[:chars - 2] + ".."
            out.append(f'<text x="{x + 12:.1f}" y="{y + ROW_PX - 4}">{escape(name)}</text>')
        out.append("</g>")
    out.append("</svg>\n")
    return "\n".join(out)
