namespace ClusterConv.Cli.Training;

/// <summary>Everything `clusterconv train` was asked to do; recorded in summary.json.</summary>
public sealed record TrainSettings
{
    public string Model { get; init; } = "keras-cnn";

    /// <summary>"fashion-mnist", "synthetic", or a folder of IDX files.</summary>
    public string Data { get; init; } = "fashion-mnist";

    public int Epochs { get; init; } = 3;

    public int BatchSize { get; init; } = 64;

    public string Optimizer { get; init; } = "adam";

    /// <summary>Null: the default for the optimizer (<see cref="DefaultLearningRate"/>).</summary>
    public float? LearningRate { get; init; }

    /// <summary>"constant", "step", or "cosine" (decays to zero over the run; with Adam at 0.002 it reaches 0.90 on Fashion-MNIST in 2 to 3 epochs).</summary>
    public string Schedule { get; init; } = "cosine";

    public float BaseLearningRate => LearningRate ?? DefaultLearningRate(Optimizer);

    /// <summary>0.002 for adam and adamw (twice Keras' default: the cosine decay takes it down), 0.01 for sgd.</summary>
    public static float DefaultLearningRate(string optimizer) => optimizer == "sgd" ? 0.01f : 0.002f;

    public ulong Seed { get; init; } = 1;

    public int Threads { get; init; } = Environment.ProcessorCount;

    public int? TrainLimit { get; init; }

    public int? TestLimit { get; init; }

    public long? MaxSteps { get; init; }

    public string OutDir { get; init; } = "runs/latest";

    /// <summary>Per-filter statistics every this many steps (0 = never).</summary>
    public int StatsEvery { get; init; } = 10;

    /// <summary>A step line in metrics.jsonl every this many steps (steps with statistics always log).</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Steps without any positive output before a filter counts as dead.</summary>
    public int DeadWindow { get; init; } = 100;

    public bool Augment { get; init; }

    /// <summary>Worker grains; 0 trains in this process with the engine alone (LocalTrainer). Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Micro-batches (and data shards) per global batch; null: max(4, workers). Fixed micro-batches make the weights independent of the worker count.</summary>
    public int? MicroBatches { get; init; }

    public int EffectiveMicroBatches => MicroBatches ?? Math.Max(4, Workers);

    /// <summary>"bsp", "ssp:K" or "async".</summary>
    public string Mode { get; init; } = "bsp";

    /// <summary>Parameter-server shards; null: one per 512 KiB of parameters, 1 to 8.</summary>
    public int? PsShards { get; init; }

    public int BackupWorkers { get; init; }

    public int CheckpointEvery { get; init; } = 50;

    public bool Resume { get; init; }

    /// <summary>"redis://HOST:PORT" to submit to a running cluster; null starts an in-process silo.</summary>
    public string? Cluster { get; init; }

    /// <summary>Job id (default: derived from the run folder name).</summary>
    public string? JobId { get; init; }

    /// <summary>"none", "fp16" or "bf16" gradient compression with error feedback.</summary>
    public string Compression { get; init; } = "none";

    /// <summary>Cluster: non-finite gradients refused (each skips its step) before the run stops as diverged; 0 stops at the first.</summary>
    public int MaxNonFiniteRefusals { get; init; } = 3;

    /// <summary>Cluster, bsp: a worker whose gradient norm is more than this many times the others' median is reported; 0: off.</summary>
    public double DivergenceFactor { get; init; } = 10;
}
