namespace ClusterConv.Cluster;

/// <summary>The ids of the jobs submitted to a cluster (key 0), for `clusterconv status` without a job id.</summary>
[Alias("clusterconv.IJobRegistryGrain")]
public interface IJobRegistryGrain : IGrainWithIntegerKey
{
    Task AddAsync(string jobId);

    Task<string[]> ListAsync();
}

[GenerateSerializer, Alias("clusterconv.JobRegistryState")]
public sealed class JobRegistryState
{
    [Id(0)] public List<string> Jobs { get; set; } = [];
}

public sealed class JobRegistryGrain([PersistentState("jobs", ParameterServerGrain.StorageName)] IPersistentState<JobRegistryState> state) : Grain, IJobRegistryGrain
{
    public async Task AddAsync(string jobId)
    {
        if (!state.State.Jobs.Contains(jobId))
        {
            state.State.Jobs.Add(jobId);
            await state.WriteStateAsync();
        }
    }

    public Task<string[]> ListAsync() => Task.FromResult(state.State.Jobs.ToArray());
}
