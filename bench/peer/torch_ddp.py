#!/usr/bin/python3
"""keras-cnn trained with PyTorch DistributedDataParallel (gloo, loopback), one thread per process.

The peer of `clusterconv train --workers W`: each of the W processes computes the gradient of its
own --batch-size samples, DDP all-reduces (averages) them, every process applies Adam. Random
inputs in [0,1) (the data path is not what is measured). Prints one JSON object from rank 0:
samples/s over the whole world = world size * batch size / median step time.
Run with OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1 (cluster_compare.sh does).
"""
import argparse
import json
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from torch_keras_cnn import model


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(rank, args, port, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.world)
    torch.manual_seed(1)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    net = DistributedDataParallel(model())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(rank)
    x = torch.rand(args.batch_size, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (args.batch_size,), generator=generator)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()  # the all-reduce overlaps the backward pass (gradient buckets)
        opt.step()

    for _ in range(10):
        step()
    times = []
    for _ in range(args.steps):
        dist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if rank == 0:
        median = statistics.median(times)
        results.put({
            "framework": "pytorch-ddp " + torch.__version__,
            "backend": "gloo",
            "world_size": args.world,
            "threads_per_process": 1,
            "batch_size_per_process": args.batch_size,
            "step_ms": round(median * 1e3, 3),
            "samples_per_second": round(args.world * args.batch_size / median, 1),
        })
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.spawn(run, args=(args, free_port(), results), nprocs=args.world, join=True)
    print(json.dumps(results.get()))


if __name__ == "__main__":
    main()
