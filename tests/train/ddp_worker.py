"""Run by ``torchrun --nproc_per_node 2`` from test_ddp.py: train, then save this rank's weights."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from dcinet.config import load_config
from dcinet.train.loop import fit

if __name__ == "__main__":
    data, run_dir, out_dir, *overrides = sys.argv[1:]
    torch.set_num_threads(1)
    result = fit(load_config("cpu-tiny", overrides), Path(data), Path(run_dir), progress=False)
    rank = torch.distributed.get_rank()
    params = {k: v.detach().contiguous() for k, v in result.model.named_parameters()}
    save_file(params, str(Path(out_dir) / f"rank{rank}.safetensors"))
    torch.distributed.destroy_process_group()
