using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace ClusterConv.Cli.Hosting;

/// <summary>The generic host every command that starts a silo or a client builds on.</summary>
internal static class CommandHost
{
    /// <summary>
    /// The default application builder without watching its configuration files for changes: the default watches the
    /// working directory, with a thread of its own that wakes on every file a run writes there.
    /// </summary>
    public static HostApplicationBuilder CreateBuilder()
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection([new KeyValuePair<string, string?>("hostBuilder:reloadConfigOnChange", "false")]);
        return Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Configuration = configuration });
    }
}
