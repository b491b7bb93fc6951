using System.CommandLine;
using System.Text.RegularExpressions;

namespace ClusterConv.Cli.Hosting;

/// <summary>
/// The Redis address a verb connects with, password included (deploy/README.md): <c>password=</c> in the address wins,
/// then <c>--redis-password-file</c>, then <c>CLUSTERCONV_REDIS_PASSWORD</c>. <see cref="Display"/> is what may be printed.
/// </summary>
internal sealed partial record RedisAddress(string Connect, string Display)
{
    public const string PasswordVariable = "CLUSTERCONV_REDIS_PASSWORD";

    public static Option<string?> PasswordFileOption() => new("--redis-password-file")
    {
        Description = $"File holding the Redis password (a trailing newline is dropped); else ${PasswordVariable}; password= in the address wins.",
    };

    /// <summary>Adds the password to <paramref name="address"/> unless it carries one.</summary>
    public static RedisAddress Resolve(string address, string? passwordFile, string? environmentPassword)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (PasswordPattern().IsMatch(address))
        {
            return new RedisAddress(address, Mask(address));
        }

        string? password = null;
        if (passwordFile is not null)
        {
            try
            {
                password = File.ReadAllText(passwordFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
            {
                throw new UserException($"--redis-password-file {passwordFile}: cannot read it: {e.Message}", e, ExitCodes.IoError);
            }

            password = password.EndsWith("\r\n", StringComparison.Ordinal) ? password[..^2] : password.TrimEnd('\n');
            if (password.Length == 0)
            {
                throw new UserException($"--redis-password-file {passwordFile}: the file is empty", ExitCodes.BadInput);
            }
        }
        else if (!string.IsNullOrEmpty(environmentPassword))
        {
            password = environmentPassword;
        }

        if (password is null)
        {
            return new RedisAddress(address, address);
        }

        // StackExchange.Redis reads the address as comma-separated key=value pairs: a comma would split the password.
        if (password.Contains(',', StringComparison.Ordinal))
        {
            var source = passwordFile is null ? $"${PasswordVariable}" : $"--redis-password-file {passwordFile}";
            throw new UserException($"{source}: a Redis password containing ',' cannot be passed to StackExchange.Redis; choose another", ExitCodes.BadInput);
        }

        return new RedisAddress($"{address.TrimEnd('/')},password={password}", $"{address.TrimEnd('/')},password=***");
    }

    /// <summary>Every <c>password=…</c> in <paramref name="text"/> as <c>password=***</c>.</summary>
    public static string Mask(string text) => PasswordPattern().Replace(text ?? string.Empty, "password=***");

    // Lazy up to a ',' or white space, and not over a ':' that ends the address in a message ("--cluster ADDRESS: why").
    [GeneratedRegex("password=[^,\\s]*?(?=,|\\s|:\\s|:$|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex PasswordPattern();
}
