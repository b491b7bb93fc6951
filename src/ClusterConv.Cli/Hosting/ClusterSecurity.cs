using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ClusterConv.Cluster;

namespace ClusterConv.Cli.Hosting;

/// <summary>
/// What a verb needs to reach a secured cluster (docs/SECURITY.md): the CA of a TLS Redis, and this process's
/// certificate and trusted CA for mutual TLS between silos and clients. Null members: not used.
/// </summary>
public sealed record ClusterSecurity(X509Certificate2Collection? RedisTrustedRoots, ClusterTls? Tls)
{
    public const string RedisCaVariable = "CLUSTERCONV_REDIS_CA";
    public const string CertVariable = "CLUSTERCONV_TLS_CERT";
    public const string KeyVariable = "CLUSTERCONV_TLS_KEY";
    public const string CertPasswordVariable = "CLUSTERCONV_TLS_CERT_PASSWORD";
    public const string CaVariable = "CLUSTERCONV_TLS_CA";

    /// <summary>The settings from the CLUSTERCONV_* variables alone (verbs without the options, e.g. experiment).</summary>
    public static ClusterSecurity FromEnvironment() => Load(null, null, null, null, null);

    /// <summary>Each option wins over its environment variable; files are read and checked here, so a bad one is one clear error.</summary>
    public static ClusterSecurity Load(string? redisCa, string? cert, string? key, string? certPasswordFile, string? ca)
    {
        var redisRoots = From(redisCa, "--redis-ca", RedisCaVariable) is { } r ? LoadRoots(r.Path, r.Label) : null;

        var certSource = From(cert, "--tls-cert", CertVariable);
        var keySource = From(key, "--tls-key", KeyVariable);
        var caSource = From(ca, "--tls-ca", CaVariable);
        string? password = null;
        if (certPasswordFile is not null)
        {
            password = ReadText(certPasswordFile, "--tls-cert-password-file").TrimEnd('\r', '\n');
        }
        else if (Environment.GetEnvironmentVariable(CertPasswordVariable) is { Length: > 0 } fromEnvironment)
        {
            password = fromEnvironment;
        }

        if (certSource is null)
        {
            // The silos require a client certificate: a CA or key alone would connect to nothing.
            var stray = caSource?.Label ?? keySource?.Label ?? (certPasswordFile is null ? null : "--tls-cert-password-file");
            return stray is null
                ? new ClusterSecurity(redisRoots, null)
                : throw new UserException($"{stray} needs --tls-cert (or ${CertVariable}): cluster TLS is mutual, every silo and client shows a certificate", ExitCodes.BadInput);
        }

        var identity = LoadIdentity(certSource.Value, keySource, password);
        var roots = caSource is { } c ? LoadRoots(c.Path, c.Label) : null;
        return new ClusterSecurity(redisRoots, new ClusterTls(identity, roots));
    }

    /// <summary>One line for "running" messages: what TLS this process uses.</summary>
    public string Describe() => Tls is { } tls
        ? $"tls as '{tls.Certificate.Subject}', trusting {(tls.TrustedRoots is { } r ? string.Join(", ", r.Select(c => $"'{c.Subject}'")) : "the system's CAs")}"
        : "no tls";

    private static (string Path, string Label)? From(string? option, string optionName, string variable)
    {
        if (option is not null)
        {
            return (option, $"{optionName} {option}");
        }

        return Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value ? (value, $"${variable} ({value})") : null;
    }

    private static X509Certificate2Collection LoadRoots(string path, string label)
    {
        var text = ReadText(path, label);
        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPem(text);
        }
        catch (CryptographicException e)
        {
            throw new UserException($"{label}: not a PEM file of CA certificates: {e.Message}", e, ExitCodes.BadInput);
        }

        return roots.Count > 0 ? roots : throw new UserException($"{label}: no '-----BEGIN CERTIFICATE-----' block in it (a PEM file of CA certificates is expected)", ExitCodes.BadInput);
    }

    private static X509Certificate2 LoadIdentity((string Path, string Label) cert, (string Path, string Label)? key, string? password)
    {
        var bytes = ReadBytes(cert.Path, cert.Label);
        X509Certificate2 certificate;
        try
        {
            if (bytes.AsSpan().IndexOf("-----BEGIN"u8) >= 0)
            {
                var certText = System.Text.Encoding.ASCII.GetString(bytes);
                var keyText = key is { } k ? ReadText(k.Path, k.Label) : certText;
                certificate = password is null ? X509Certificate2.CreateFromPem(certText, keyText) : X509Certificate2.CreateFromEncryptedPem(certText, keyText, password);
            }
            else
            {
                certificate = X509CertificateLoader.LoadPkcs12(bytes, password);
            }
        }
        catch (CryptographicException e)
        {
            var what = key is null ? "a PKCS#12 (.pfx) file, or a PEM certificate followed by its private key (else give --tls-key)" : "a PEM certificate whose key is in --tls-key";
            throw new UserException($"{cert.Label}: cannot load it as {what}{(password is null ? string.Empty : ", or the password is wrong")}: {e.Message}", e, ExitCodes.BadInput);
        }
        catch (ArgumentException e)
        {
            throw new UserException($"{cert.Label}: no certificate or private key found in it: {e.Message}", e, ExitCodes.BadInput);
        }

        return certificate.HasPrivateKey ? certificate : throw new UserException($"{cert.Label}: the certificate has no private key", ExitCodes.BadInput);
    }

    private static byte[] ReadBytes(string path, string label)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            throw new UserException($"{label}: cannot read it: {e.Message}", e, ExitCodes.IoError);
        }
    }

    private static string ReadText(string path, string label) => System.Text.Encoding.UTF8.GetString(ReadBytes(path, label));
}

/// <summary>--redis-ca and the --tls-* options of every cluster verb (silo, train, status, attach, cancel).</summary>
internal sealed class SecurityOptions
{
    public Option<string?> RedisCa { get; } = new("--redis-ca")
    {
        Description = $"PEM file of the CA that signed a TLS Redis server's certificate (rediss://HOST:PORT); else ${ClusterSecurity.RedisCaVariable}; default: the system's CAs.",
    };

    public Option<string?> Cert { get; } = new("--tls-cert")
    {
        Description = $"Turns on mutual TLS between silos and clients: this process's certificate, a .pfx file or PEM certificate + key; else ${ClusterSecurity.CertVariable}.",
    };

    public Option<string?> Key { get; } = new("--tls-key")
    {
        Description = $"PEM private key of --tls-cert when not in the same file; else ${ClusterSecurity.KeyVariable}.",
    };

    public Option<string?> CertPasswordFile { get; } = new("--tls-cert-password-file")
    {
        Description = $"File holding the password of the .pfx file or encrypted PEM key; else ${ClusterSecurity.CertPasswordVariable}.",
    };

    public Option<string?> Ca { get; } = new("--tls-ca")
    {
        Description = $"PEM file of the CA(s) a peer's certificate must chain to (host names are not checked); else ${ClusterSecurity.CaVariable}; default: the system's CAs.",
    };

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        foreach (var option in new[] { RedisCa, Cert, Key, CertPasswordFile, Ca })
        {
            command.Options.Add(option);
        }
    }

    public ClusterSecurity Resolve(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return ClusterSecurity.Load(parse.GetValue(RedisCa), parse.GetValue(Cert), parse.GetValue(Key), parse.GetValue(CertPasswordFile), parse.GetValue(Ca));
    }
}
