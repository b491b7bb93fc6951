namespace ClusterConv.Cluster;

/// <summary>
/// Test-only fault injection into a worker's step: internal, so only the cluster tests (InternalsVisibleTo) can
/// register one in a silo's services; no option of the command line or job spec reaches it.
/// </summary>
internal interface IWorkerFaults
{
    /// <summary>After the weights of <paramref name="step"/> are in the worker's copy, before it computes on them.</summary>
    void OnWeights(string job, int worker, long step, float[] weights);

    /// <summary>After the worker's gradient of <paramref name="step"/> is reduced (one array per tree node), before it is pushed.</summary>
    void OnGradient(string job, int worker, long step, IReadOnlyList<float[]> nodes);

    /// <summary>
    /// The longest last compute (seconds) after which a bsp worker of <paramref name="job"/> computes in its grain turn;
    /// a test raises <paramref name="standard"/> so that an ordinary step on a loaded machine stays under it.
    /// </summary>
    double InTurnComputeSeconds(string job, double standard) => standard;
}
