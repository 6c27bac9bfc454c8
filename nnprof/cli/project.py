"""``nnprof project RUN``: what a measured run implies on more loader workers, more
ranks and more nodes, before paying for them (the model: :mod:`nnprof.analyses.scaling`,
docs/scaling.md).

Exit codes: 0; 2 for bad input (not a run, a bad list, an unknown link, a link that
cannot be measured here).
"""
from __future__ import annotations

import json
import os
import sys

from .args import UsageError, _int_list, _Parser, _positive_float, _width
from .loading import load_any


def _parser() -> _Parser:
    p = _Parser(prog="nnprof project",
                description="Project a profiled run to more loader workers, ranks (GPUs or "
                            "processes) and nodes: step time, throughput, scaling "
                            "efficiency, the bound at each scale and what to change first.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--workers", type=lambda t: _int_list(t, 0), metavar="K[,K..]",
                   help="loader workers per rank (default: the run's own, and the number "
                        "that would keep up)")
    p.add_argument("--ranks", type=lambda t: _int_list(t, 1), metavar="N[,N..]",
                   help="data-parallel ranks in all (default 1,2,4,8 and the run's own)")
    p.add_argument("--nodes", type=lambda t: _int_list(t, 1)[0], metavar="M",
                   help="nodes the ranks are spread over (default: one node per "
                        "--gpus-per-node ranks, else 1)")
    p.add_argument("--gpus-per-node", type=lambda t: _int_list(t, 1)[0], metavar="G",
                   help="ranks per node; with --nodes and no --ranks, N = M x G")
    p.add_argument("--batch-scale", type=_positive_float, default=1.0, metavar="S",
                   help="batch per rank as a multiple of the run's (default 1)")
    p.add_argument("--link", metavar="NAME|GBPS|measure",
                   help="the link between ranks: a preset (nvlink4, nvlink3, pcie5, pcie4, "
                        "ib-ndr8, ib-ndr, ib-hdr, eth-100g, eth-25g, eth-10g), a bus "
                        "bandwidth in GB/s, or measure (a short all-reduce benchmark here); "
                        "default: a distributed run's own measured wait")
    p.add_argument("--cores-per-node", type=lambda t: _int_list(t, 1)[0], metavar="C",
                   help="usable CPU cores per target node (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the projection as JSON")
    return p


def targets(opts, basis: dict) -> list:
    """(workers, ranks, nodes) to project, from the options (None: the defaults)."""
    if opts.workers is None and opts.ranks is None and opts.nodes is None \
            and opts.gpus_per_node is None:
        return None
    from ..analyses.scaling import default_targets
    workers = opts.workers if opts.workers is not None else sorted(
        {w for w, _, _ in default_targets(basis)})
    if opts.ranks is not None:
        ranks = opts.ranks
    elif opts.nodes and opts.gpus_per_node:
        ranks = [opts.nodes * opts.gpus_per_node]
    elif opts.gpus_per_node:
        ranks = [opts.gpus_per_node]
    else:
        ranks = sorted({1, 2, 4, 8, basis["ranks"]})
    out = []
    for n in ranks:
        if opts.nodes:
            nodes = min(opts.nodes, n)
        elif opts.gpus_per_node:
            nodes = -(-n // opts.gpus_per_node)
        else:
            nodes = 1
        if opts.gpus_per_node and -(-n // nodes) > opts.gpus_per_node:
            raise UsageError(f"{n} ranks on {nodes} node(s) is more than --gpus-per-node "
                             f"{opts.gpus_per_node} per node")
        out += [(k, n, nodes) for k in workers]
    return out


def cmd_project(argv: list) -> int:
    opts = _parser().parse_args(argv)
    from ..analyses.scaling import basis_from, link_from, project
    run, summary = load_any(opts.run_dir)
    meta = getattr(run, "meta", None) or {}
    link = opts.link
    if link is not None and link.strip().lower() == "measure":
        from ..distributed.linkbench import measure
        try:
            link = measure()
        except RuntimeError as exc:
            raise UsageError(f"cannot measure the link here: {exc}") from None
    try:
        link = link_from(link)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    basis = basis_from(summary, meta)
    gpus = True if opts.gpus_per_node else None
    result = project(summary, meta, targets(opts, basis), opts.batch_scale, link,
                     opts.cores_per_node, gpus, basis)
    if opts.json:
        sys.stdout.write(json.dumps(result, indent=2, default=str, allow_nan=False) + "\n")
        return 0
    from ..renderers.scaling import projection_text
    tty = sys.stdout.isatty()
    sys.stdout.write(projection_text(result, os.path.basename(os.path.normpath(opts.run_dir)),
                                     width=_width(tty)))
    return 0
