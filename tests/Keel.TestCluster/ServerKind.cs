namespace Keel.TestCluster;

/// <summary>Which server the integration tests start: the same tests run unchanged against either.</summary>
public enum ServerKind
{
    /// <summary>Keel: <c>dotnet keel.dll serve</c> with etcd's flags.</summary>
    Keel,

    /// <summary>etcd 3.4 (Debian's etcd-server, <c>/usr/bin/etcd</c>): the reference the tests are validated against.</summary>
    Etcd,
}

/// <summary>Reads the server choice from the environment variable <see cref="EnvironmentVariable"/>.</summary>
public static class ServerSelection
{
    /// <summary>The variable naming the server: <c>keel</c> (the default) or <c>etcd</c>.</summary>
    public const string EnvironmentVariable = "KEEL_TEST_SERVER";

    /// <summary>The server chosen by <see cref="EnvironmentVariable"/>; Keel when unset.</summary>
    /// <exception cref="InvalidOperationException">The variable holds something other than keel or etcd.</exception>
    public static ServerKind FromEnvironment()
    {
        var value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(value)) return ServerKind.Keel;
        return value.Trim().ToLowerInvariant() switch
        {
            "keel" => ServerKind.Keel,
            "etcd" => ServerKind.Etcd,
            _ => throw new InvalidOperationException($"{EnvironmentVariable}='{value}': expected 'keel' or 'etcd'."),
        };
    }
}
