#!/usr/bin/python3
"""The keras-cnn training step in PyTorch, timed the way `clusterconv bench` times it.

Conv2D(32,3x3,relu) > MaxPool2 > Conv2D(64,3x3,relu) > MaxPool2 > Flatten > Dense(128,relu) > Dense(10),
softmax cross-entropy, Adam; random inputs in [0,1). Prints one JSON object.
Run with OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS set to --threads (compare.sh does).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn


def model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(args.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch_size,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    times = []
    cpu = 0.0
    for _ in range(args.steps):
        cpu_start = time.process_time()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        cpu += time.process_time() - cpu_start
    median = statistics.median(times)
    print(json.dumps({
        "framework": "pytorch " + torch.__version__,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "step_ms": round(median * 1e3, 3),
        "samples_per_second": round(args.batch_size / median, 1),
        "best_step_ms": round(min(times) * 1e3, 3),
        # process CPU time per step (all threads): steadier than wall time on a loaded machine
        "cpu_ms_per_step": round(cpu / args.steps * 1e3, 3),
    }))


if __name__ == "__main__":
    main()
