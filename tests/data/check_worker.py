"""Run by ``torchrun --nproc_per_node 2`` from test_check.py: check a folder dataset together,
then write what this rank decoded and the problems it knows of."""

import json
import sys
from pathlib import Path

import torch.distributed as dist

import dcinet.data.check as check
from dcinet.data.readers import read_folder
from dcinet.distributed import init_distributed

if __name__ == "__main__":
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    info = init_distributed("cpu")
    decoded = []
    decode_one = check._decode_one

    def counting(sample):
        decoded.append(str(sample.path))
        return decode_one(sample)

    check._decode_one = counting
    report = check.check_collection(read_folder(root), decode=True, dist=info)
    (out / f"rank{info.rank}.json").write_text(json.dumps({
        "decoded": decoded, "problems": [p.format() for p in report.problems],
        "bad": sorted(report.bad_samples)}))
    dist.destroy_process_group()
