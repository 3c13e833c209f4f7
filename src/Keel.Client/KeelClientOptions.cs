using Microsoft.Extensions.Options;

namespace Keel.Client;

/// <summary>
/// Settings of a <see cref="KeelClient"/>: which members to talk to and how long to wait. Bound from configuration by
/// <see cref="KeelClientServiceCollectionExtensions.AddKeelClient"/> and checked by <see cref="KeelClientOptionsValidator"/>
/// (at start-up there, in the constructor when built by hand), so a typo fails at once instead of at the first call.
/// </summary>
public sealed class KeelClientOptions
{
    /// <summary>The configuration section name used in the documentation: <c>"Keel"</c>.</summary>
    public const string SectionName = "Keel";

    /// <summary>Client URLs of the members, e.g. <c>http://10.0.0.1:2379</c>; calls are spread over all of them and move on from one that fails.</summary>
    public IList<string> Endpoints { get; set; } = [];

    /// <summary>Bound on opening a connection to one member (default 2 s); a member that does not accept in time is skipped.</summary>
    public TimeSpan DialTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Deadline of one attempt of one call (default 5 s); an attempt that runs out is retried on the next member where that is safe.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How many times a failed call is retried (default 8), each time on the next member with a growing pause of at most 1 s.</summary>
    public int RetryLimit { get; set; } = 8;

    /// <summary>
    /// Sends a client-generated idempotency key with every Put, Delete, Txn and LeaseGrant and reuses it on each retry,
    /// so a retry after a timeout or a leader change never applies twice (default true). Servers without the extension
    /// (etcd) ignore the key; turn it off only to measure what it prevents.
    /// </summary>
    public bool IdempotentWrites { get; set; } = true;

    /// <summary>
    /// The user to authenticate as when the cluster has auth enabled (etcd's <c>--user</c>): the client calls
    /// Authenticate on each member it talks to and sends the token with every call, authenticating again when a member
    /// answers "invalid auth token" (simple tokens are per member; an expired one is replaced). Null: no token, so with
    /// <c>--client-cert-auth</c> the server takes the user from the client certificate's common name.
    /// </summary>
    public string? Username { get; set; }

    /// <summary>The password of <see cref="Username"/>.</summary>
    public string? Password { get; set; }

    /// <summary>PEM file of the CA that signed the members' certificates (etcdctl's <c>--cacert</c>); null: the system's trust store.</summary>
    public string? CaFile { get; set; }

    /// <summary>PEM client certificate for mutual TLS (etcdctl's <c>--cert</c>); with <see cref="KeyFile"/>.</summary>
    public string? CertFile { get; set; }

    /// <summary>PEM private key of <see cref="CertFile"/> (etcdctl's <c>--key</c>).</summary>
    public string? KeyFile { get; set; }
}

/// <summary>Checks <see cref="KeelClientOptions"/>: at least one absolute http(s) endpoint, positive bounded timeouts, a sane retry limit.</summary>
public sealed class KeelClientOptionsValidator : IValidateOptions<KeelClientOptions>
{
    /// <summary>Longest accepted <see cref="KeelClientOptions.DialTimeout"/> and <see cref="KeelClientOptions.CommandTimeout"/>.</summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Highest accepted <see cref="KeelClientOptions.RetryLimit"/>.</summary>
    public const int MaxRetryLimit = 100;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, KeelClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = Problems(options).ToList();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Every problem with <paramref name="options"/>, as messages naming the setting.</summary>
    public static IEnumerable<string> Problems(KeelClientOptions options)
    {
        if (options.Endpoints is null || options.Endpoints.Count == 0)
            yield return "Keel:Endpoints: at least one endpoint is required (e.g. http://127.0.0.1:2379)";
        else
            foreach (var endpoint in options.Endpoints)
                if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host))
                    yield return $"Keel:Endpoints: '{endpoint}' is not an absolute http:// or https:// URL";
        if (options.Password is not null && string.IsNullOrEmpty(options.Username))
            yield return "Keel:Password is set without Keel:Username";
        if (options.Username is { } user && (user.Length == 0 || options.Password is null))
            yield return "Keel:Username needs a non-empty name and Keel:Password (a certificate user sends no username: its certificate's CN is the user)";
        if ((options.CertFile is null) != (options.KeyFile is null))
            yield return "Keel:CertFile and Keel:KeyFile go together (a client certificate and its private key)";
        foreach (var (setting, path) in new[] { ("CaFile", options.CaFile), ("CertFile", options.CertFile), ("KeyFile", options.KeyFile) })
            if (path is not null && !File.Exists(path))
                yield return $"Keel:{setting}: file '{path}' does not exist";
        if (options.DialTimeout <= TimeSpan.Zero || options.DialTimeout > MaxTimeout)
            yield return $"Keel:DialTimeout: {options.DialTimeout} must be more than zero and at most {MaxTimeout}";
        if (options.CommandTimeout <= TimeSpan.Zero || options.CommandTimeout > MaxTimeout)
            yield return $"Keel:CommandTimeout: {options.CommandTimeout} must be more than zero and at most {MaxTimeout}";
        if (options.RetryLimit is < 0 or > MaxRetryLimit)
            yield return $"Keel:RetryLimit: {options.RetryLimit} must be between 0 and {MaxRetryLimit}";
    }
}
