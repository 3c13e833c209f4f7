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
        if (options.DialTimeout <= TimeSpan.Zero || options.DialTimeout > MaxTimeout)
            yield return $"Keel:DialTimeout: {options.DialTimeout} must be more than zero and at most {MaxTimeout}";
        if (options.CommandTimeout <= TimeSpan.Zero || options.CommandTimeout > MaxTimeout)
            yield return $"Keel:CommandTimeout: {options.CommandTimeout} must be more than zero and at most {MaxTimeout}";
        if (options.RetryLimit is < 0 or > MaxRetryLimit)
            yield return $"Keel:RetryLimit: {options.RetryLimit} must be between 0 and {MaxRetryLimit}";
    }
}
