using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ClusterConv.Integration.Tests;

/// <summary>
/// No secret in the repository (docs/SECURITY.md): no private key or certificate store is tracked, no deployment or
/// script file sets a password literally, compose reads its passwords from env files that are not committed, and
/// Kubernetes takes every password from a Secret.
/// </summary>
public sealed partial class RepositorySecretsTests
{
    private static readonly string Root = FindRoot();
    private static readonly string[] Tracked = TrackedFiles();

    [Fact]
    public void No_tracked_file_holds_a_private_key_or_a_certificate_store()
    {
        Assert.True(Tracked.Length > 50, $"only {Tracked.Length} files found under {Root}");
        var found = new List<string>();
        foreach (var file in Tracked)
        {
            if (file.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".p12", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".key", StringComparison.OrdinalIgnoreCase))
            {
                found.Add($"{file}: a key or certificate store");
            }
            else if (Read(file) is { } text && PrivateKey().IsMatch(text))
            {
                found.Add($"{file}: a PEM private key");
            }
        }

        Assert.True(found.Count == 0, string.Join('\n', found));
    }

    [Fact]
    public void No_deployment_or_script_file_sets_a_password_literally()
    {
        // Code and documentation are left out: tests make their own throw-away passwords, the docs show placeholders.
        // The detector finds what it is meant to.
        Assert.Matches(SecretAssignment(), "CLUSTERCONV_REDIS_PASSWORD=hunter22");
        Assert.Matches(SecretAssignment(), "--cluster redis://redis:6379,password=hunter22");
        Assert.Matches(SecretAssignment(), "  \"apiKey\": \"abcd1234\"");
        var found = new List<string>();
        foreach (var file in Tracked.Where(f => !f.EndsWith(".cs", StringComparison.Ordinal) && !f.EndsWith(".md", StringComparison.Ordinal) && !f.EndsWith("package-lock.json", StringComparison.Ordinal)))
        {
            var lines = Read(file)?.Split('\n') ?? [];
            for (var i = 0; i < lines.Length; i++)
            {
                if (lines[i].TrimStart().StartsWith('#') || lines[i].TrimStart().StartsWith("//", StringComparison.Ordinal))
                {
                    continue;
                }

                foreach (Match m in SecretAssignment().Matches(lines[i]))
                {
                    var value = m.Groups["value"].Value;
                    if (!IsPlaceholder(value))
                    {
                        found.Add($"{file}:{i + 1}: {m.Groups["name"].Value} = {value[..Math.Min(3, value.Length)]}...");
                    }
                }
            }
        }

        Assert.True(found.Count == 0, string.Join('\n', found));
    }

    [Fact]
    public void Compose_reads_uncommitted_env_files_and_kubernetes_reads_secrets()
    {
        Assert.DoesNotContain("deploy/.env", Tracked);
        Assert.DoesNotContain("deploy/grafana.env", Tracked);
        Assert.Contains("deploy/.env.example", Tracked);
        var ignored = File.ReadAllLines(Path.Combine(Root, "deploy", ".gitignore"));
        Assert.Contains(".env", ignored);
        Assert.Contains("grafana.env", ignored);

        var compose = File.ReadAllText(Path.Combine(Root, "docker-compose.yml"));
        Assert.Contains("env_file: ${CLUSTERCONV_ENV_FILE:-deploy/.env}", compose, StringComparison.Ordinal);

        // Every *PASSWORD* variable of a manifest comes from a secretKeyRef, never a value.
        var manifests = Tracked.Where(f => f.StartsWith("k8s/", StringComparison.Ordinal) && f.EndsWith(".yaml", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(manifests);
        var passwords = 0;
        foreach (var file in manifests)
        {
            var lines = File.ReadAllLines(Path.Combine(Root, file));
            for (var i = 0; i < lines.Length; i++)
            {
                if (PasswordVariable().IsMatch(lines[i]))
                {
                    passwords++;
                    var next = string.Join('\n', lines.Skip(i + 1).Take(2));
                    Assert.True(next.Contains("valueFrom:", StringComparison.Ordinal) && next.Contains("secretKeyRef:", StringComparison.Ordinal), $"{file}:{i + 1}: {lines[i].Trim()} is not read from a Secret");
                }
            }
        }

        Assert.True(passwords >= 2, "the silo and the trainer read CLUSTERCONV_REDIS_PASSWORD");
    }

    private static bool IsPlaceholder(string value) =>
        value is "change-me" or "***" or "true" or "false" || value.StartsWith('$') || value.StartsWith("<", StringComparison.Ordinal) || value.EndsWith("_FILE", StringComparison.Ordinal);

    private static string? Read(string file)
    {
        var path = Path.Combine(Root, file);
        if (!File.Exists(path) || new FileInfo(path).Length > 2_000_000)
        {
            return null;
        }

        var text = File.ReadAllText(path);
        return text.Contains('\0', StringComparison.Ordinal) ? null : text;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ClusterConv.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no ClusterConv.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>git's tracked files; outside a git checkout, every file but build output and packages.</summary>
    private static string[] TrackedFiles()
    {
        try
        {
            var info = new ProcessStartInfo("git", ["-C", Root, "ls-files", "-z"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var git = Process.Start(info)!;
            var output = git.StandardOutput.ReadToEnd();
            git.WaitForExit();
            if (git.ExitCode == 0)
            {
                return output.Split('\0', StringSplitOptions.RemoveEmptyEntries);
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }

        return Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/'))
            .Where(f => !Regex.IsMatch(f, "(^|/)(bin|obj|node_modules|\\.git)/"))
            .ToArray();
    }

    [GeneratedRegex("-----BEGIN ([A-Z]+ )?PRIVATE KEY-----")]
    private static partial Regex PrivateKey();

    // NAME=value, NAME: value, "name": "value", and password=value inside a Redis address; the name ends with the
    // word, so references (secretName, secretKeyRef, *_FILE) are not values.
    [GeneratedRegex("""(?<name>[A-Za-z_]*(?:password|passwd|secret|token|apikey|api_key))["']?\s*[:=]\s*["']?(?<value>[^\s"',;)]{4,})""", RegexOptions.IgnoreCase)]
    private static partial Regex SecretAssignment();

    [GeneratedRegex(@"^\s*-?\s*name:\s*[A-Z0-9_]*PASSWORD[A-Z0-9_]*\s*$")]
    private static partial Regex PasswordVariable();
}
