using ClusterConv.Cli.Output;
using ClusterConv.Engine.IO;

namespace ClusterConv.Cli.Tests;

/// <summary>The run-folder writers (summary.json, model.json, experiment.json, checkpoints) go through AtomicFile.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly DirectoryInfo temp = CliRunner.TempDirectory();

    public void Dispose() => temp.Delete(recursive: true);

    [Fact]
    public void A_write_that_fails_midway_leaves_the_previous_file_intact_and_no_temporary_file()
    {
        var path = Path.Combine(temp.FullName, "summary.json");
        AtomicFile.WriteAllText(path, "{\"version\": 1}\n");
        var error = Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[100_000]);
            throw new IOException("disk full (simulated)");
        }));
        Assert.Equal("disk full (simulated)", error.Message);
        Assert.Equal("{\"version\": 1}\n", File.ReadAllText(path));
        Assert.Equal(["summary.json"], temp.EnumerateFiles().Select(f => f.Name));
    }

    [Fact]
    public void A_completed_write_replaces_the_file_whole()
    {
        var path = Path.Combine(temp.FullName, "checkpoints", "step-10.ckpt");
        AtomicFile.Write(path, stream => stream.Write(new byte[] { 1, 2, 3 }));
        AtomicFile.Write(path, stream => stream.Write(new byte[] { 4, 5 }));
        Assert.Equal([4, 5], File.ReadAllBytes(path));
        Assert.Single(Directory.EnumerateFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void Rolling_back_a_run_folder_removes_only_what_the_run_added()
    {
        var run = Path.Combine(temp.FullName, "run");
        Directory.CreateDirectory(Path.Combine(run, "checkpoints"));
        File.WriteAllText(Path.Combine(run, "checkpoints", "step-0.ckpt"), "old");
        var guard = new RunFolderGuard(run);
        File.WriteAllText(Path.Combine(run, "metrics.jsonl"), "new");
        File.WriteAllText(Path.Combine(run, "checkpoints", "step-5.ckpt"), "new");
        Directory.CreateDirectory(Path.Combine(run, "extra", "deeper"));
        guard.Rollback();
        Assert.Equal([Path.Combine(run, "checkpoints", "step-0.ckpt")], Directory.EnumerateFiles(run, "*", SearchOption.AllDirectories));
        Assert.Equal([Path.Combine(run, "checkpoints")], Directory.EnumerateDirectories(run, "*", SearchOption.AllDirectories));

        var fresh = Path.Combine(temp.FullName, "fresh");
        var freshGuard = new RunFolderGuard(fresh);
        Directory.CreateDirectory(Path.Combine(fresh, "checkpoints"));
        File.WriteAllText(Path.Combine(fresh, "checkpoints", "step-0.ckpt"), "new");
        freshGuard.Rollback();
        Assert.False(Directory.Exists(fresh));
    }
}
