using System.CommandLine;
using Grpc.Net.Client;
using Keel.Client;

namespace Keel.Cli;

/// <summary>
/// etcdctl's connection security flags for every <c>keel</c> command that talks to a member: <c>--cacert</c>,
/// <c>--cert</c>, <c>--key</c> (TLS and mutual TLS) and <c>--user NAME:PASSWORD</c> (a token from Authenticate sent with
/// every call; without it, with <c>--client-cert-auth</c>, the certificate's CN is the user). The same channel setup as
/// <see cref="KeelClient"/> (<see cref="KeelChannel"/>).
/// </summary>
internal sealed class CliConnection
{
    public Option<string?> CaCert { get; } = new("--cacert") { Description = "Verify the members' certificates with this CA bundle (PEM)." };

    public Option<string?> Cert { get; } = new("--cert") { Description = "Identify this client with this TLS certificate (PEM)." };

    public Option<string?> Key { get; } = new("--key") { Description = "The private key of --cert (PEM)." };

    public Option<string?> User { get; } = new("--user") { Description = "NAME:PASSWORD to authenticate as (etcd's auth)." };

    /// <summary>Adds the four options to <paramref name="command"/>.</summary>
    public Command AddTo(Command command)
    {
        command.Options.Add(CaCert);
        command.Options.Add(Cert);
        command.Options.Add(Key);
        command.Options.Add(User);
        return command;
    }

    /// <summary><paramref name="endpoint"/> as a URL: <c>host:port</c> is http, or https when a CA or certificate is given.</summary>
    public string Address(ParseResult parse, string endpoint) =>
        endpoint.Contains("://", StringComparison.Ordinal) ? endpoint
        : (parse.GetValue(CaCert) ?? parse.GetValue(Cert)) is not null ? "https://" + endpoint : "http://" + endpoint;

    /// <summary>A channel to <paramref name="endpoint"/> with the command line's TLS and auth.</summary>
    /// <exception cref="ArgumentException">A flag is malformed or a file cannot be read.</exception>
    public GrpcChannel Open(ParseResult parse, string endpoint, TimeSpan dialTimeout)
    {
        string? user = null, password = null;
        if (parse.GetValue(User) is { } credentials)
        {
            var colon = credentials.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) throw new ArgumentException("--user must be NAME:PASSWORD");
            (user, password) = (credentials[..colon], credentials[(colon + 1)..]);
        }
        var options = new KeelClientOptions
        {
            Endpoints = [Address(parse, endpoint)], CaFile = parse.GetValue(CaCert), CertFile = parse.GetValue(Cert), KeyFile = parse.GetValue(Key),
            Username = user, Password = password, DialTimeout = dialTimeout,
        };
        if (KeelClientOptionsValidator.Problems(options).FirstOrDefault() is { } problem)
            throw new ArgumentException(problem.Replace("Keel:CaFile", "--cacert", StringComparison.Ordinal).Replace("Keel:CertFile", "--cert", StringComparison.Ordinal)
                .Replace("Keel:KeyFile", "--key", StringComparison.Ordinal));
        return KeelChannel.Create(options.Endpoints[0], options);
    }
}
