"""Run by ``torchrun`` from test_ddp.py: train (saying what the loop trains: the DDP wrapper or
the model), then save this rank's weights."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import dcinet.train.loop as loop
from dcinet.config import load_config
from dcinet.train.loop import fit

if __name__ == "__main__":
    data, run_dir, out_dir, *overrides = sys.argv[1:]
    torch.set_num_threads(1)
    wrap = loop.wrap_for_training

    def reporting(model, cfg, dist):
        net = wrap(model, cfg, dist)
        if isinstance(net, torch.nn.parallel.DistributedDataParallel):
            print(f"rank {dist.rank}: wrapped in DistributedDataParallel", flush=True)
        return net

    loop.wrap_for_training = reporting
    result = fit(load_config("cpu-tiny", overrides), Path(data), Path(run_dir))
    rank = torch.distributed.get_rank()
    params = {k: v.detach().contiguous() for k, v in result.model.named_parameters()}
    save_file(params, str(Path(out_dir) / f"rank{rank}.safetensors"))
