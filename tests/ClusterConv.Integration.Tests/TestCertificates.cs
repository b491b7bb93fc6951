using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ClusterConv.Integration.Tests;

/// <summary>A CA and the certificates it signs, made by the test (nothing is read from the repository).</summary>
public sealed class TestCa : IDisposable
{
    private TestCa(X509Certificate2 certificate) => Certificate = certificate;

    public X509Certificate2 Certificate { get; }

    public static TestCa Create(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return new TestCa(request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1)));
    }

    /// <summary>A leaf certificate for 127.0.0.1 and localhost, usable by a server and a client (silos are both).</summary>
    public X509Certificate2 Issue(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issued = request.Create(Certificate, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), serial);
        return issued.CopyWithPrivateKey(key);
    }

    public void WriteCertificatePem(string path) => File.WriteAllText(path, Certificate.ExportCertificatePem());

    public void Dispose() => Certificate.Dispose();
}

public static class CertificateFiles
{
    /// <summary>Certificate and private key as two PEM files (what redis-server and --tls-cert/--tls-key read).</summary>
    public static void WritePem(X509Certificate2 certificate, string certificatePath, string keyPath)
    {
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        using var key = certificate.GetRSAPrivateKey()!;
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>A password-protected PKCS#12 file.</summary>
    public static void WritePfx(X509Certificate2 certificate, string path, string password) =>
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, password));

    /// <summary>Waits until a TLS redis-server answers PING after AUTH (its certificate is not checked here).</summary>
    public static async Task WaitForTlsRedisAsync(int port, string password, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, port);
                await using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" });
                await tls.WriteAsync(Encoding.ASCII.GetBytes($"AUTH {password}\r\nPING\r\n"));
                var answer = string.Empty;
                var buffer = new byte[64];
                int n;
                while (!answer.Contains("PONG", StringComparison.Ordinal) && !answer.Contains('-', StringComparison.Ordinal) && (n = await tls.ReadAsync(buffer)) > 0)
                {
                    answer += Encoding.ASCII.GetString(buffer, 0, n);
                }

                if (answer.Contains("+PONG", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (Exception e) when ((e is SocketException or IOException or System.Security.Authentication.AuthenticationException) && clock.Elapsed < timeout)
            {
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"TLS redis-server did not answer on port {port}");
            }

            await Task.Delay(100);
        }
    }
}
