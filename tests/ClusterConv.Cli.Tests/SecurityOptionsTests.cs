using ClusterConv.Cli.Hosting;
using ClusterConv.Cluster;

namespace ClusterConv.Cli.Tests;

/// <summary>The Redis address forms with TLS and the checks of --redis-ca and --tls-* files (docs/SECURITY.md).</summary>
public sealed class SecurityOptionsTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("clusterconv-security-").FullName;

    [Theory]
    [InlineData("redis://h:6379", "h:6379")]
    [InlineData("redis://h:6379/", "h:6379")]
    [InlineData("rediss://h:6380", "h:6380,ssl=true")]
    [InlineData("rediss://h:6380,password=p", "h:6380,ssl=true,password=p")]
    [InlineData("redis://h:6380?ssl=true", "h:6380,ssl=true")]
    [InlineData("redis://h:6380/?ssl=true&sslHost=redis.local,password=p", "h:6380,ssl=true,sslHost=redis.local,password=p")]
    [InlineData("h:6380,ssl=true", "h:6380,ssl=true")]
    public void Redis_urls_become_stackexchange_configuration_strings(string address, string expected)
    {
        Assert.Equal(expected, ClusterHosting.RedisEndpoint(address));
        Assert.Equal(expected.Contains("ssl=true", StringComparison.Ordinal), ClusterHosting.RedisConfiguration(address, null).Ssl);
    }

    [Fact]
    public void A_masked_password_keeps_the_colon_that_ends_the_address_in_a_message()
    {
        Assert.Equal("--cluster rediss://h:1,password=***: cannot reach Redis", RedisAddress.Mask("--cluster rediss://h:1,password=secret: cannot reach Redis"));
    }

    [Fact]
    public void Without_options_or_variables_nothing_is_secured()
    {
        var security = ClusterSecurity.Load(null, null, null, null, null);
        Assert.Null(security.RedisTrustedRoots);
        Assert.Null(security.Tls);
    }

    [Fact]
    public void Missing_or_malformed_files_and_a_ca_without_a_certificate_are_refused_with_the_option_named()
    {
        var missing = Assert.Throws<UserException>(() => ClusterSecurity.Load(null, Path.Combine(directory, "none.pfx"), null, null, null));
        Assert.Equal(ExitCodes.IoError, missing.ExitCode);
        Assert.StartsWith($"--tls-cert {Path.Combine(directory, "none.pfx")}: cannot read it", missing.Message, StringComparison.Ordinal);

        var garbage = Path.Combine(directory, "garbage.pem");
        File.WriteAllText(garbage, "not a certificate\n");
        var notPem = Assert.Throws<UserException>(() => ClusterSecurity.Load(garbage, null, null, null, null));
        Assert.Equal(ExitCodes.BadInput, notPem.ExitCode);
        Assert.StartsWith($"--redis-ca {garbage}: no '-----BEGIN CERTIFICATE-----' block", notPem.Message, StringComparison.Ordinal);

        var notPfx = Assert.Throws<UserException>(() => ClusterSecurity.Load(null, garbage, null, null, null));
        Assert.Equal(ExitCodes.BadInput, notPfx.ExitCode);
        Assert.StartsWith($"--tls-cert {garbage}: cannot load it as a PKCS#12 (.pfx) file", notPfx.Message, StringComparison.Ordinal);

        var caAlone = Assert.Throws<UserException>(() => ClusterSecurity.Load(null, null, null, null, garbage));
        Assert.Equal(ExitCodes.BadInput, caAlone.ExitCode);
        Assert.StartsWith($"--tls-ca {garbage} needs --tls-cert", caAlone.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_without_its_key_is_refused()
    {
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=keyless", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));
        var path = Path.Combine(directory, "keyless.pem");
        File.WriteAllText(path, certificate.ExportCertificatePem());
        var refused = Assert.Throws<UserException>(() => ClusterSecurity.Load(null, path, null, null, null));
        Assert.Equal(ExitCodes.BadInput, refused.ExitCode);
        Assert.Contains("else give --tls-key", refused.Message, StringComparison.Ordinal);

        // With its key beside it, it loads.
        File.AppendAllText(path, "\n" + key.ExportPkcs8PrivateKeyPem());
        Assert.Equal("CN=keyless", ClusterSecurity.Load(null, path, null, null, null).Tls!.Certificate.Subject);
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);
}
