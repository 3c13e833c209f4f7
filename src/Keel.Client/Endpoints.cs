using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;

namespace Keel.Client;

/// <summary>
/// One gRPC channel per member and the choice of member for each attempt: round-robin over the members not recently
/// failed, so load is spread and a dead or leaderless member is passed over for a while (1 s, doubling per failure in
/// a row up to 8 s) instead of being asked again at once.
/// </summary>
internal sealed class Endpoints : IDisposable
{
    private static readonly TimeSpan MinPenalty = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxPenalty = TimeSpan.FromSeconds(8);
    private readonly Member[] _members;
    private int _next = -1;

    public Endpoints(KeelClientOptions options)
    {
        var security = ChannelSecurity.Load(options);
        _members = options.Endpoints.Select(url =>
        {
            var (channel, tokens) = security.Create(url, options.DialTimeout);
            return new Member(url, channel, tokens);
        }).ToArray();
    }

    /// <summary>Forgets the member's token (it answered "invalid auth token"): the next call authenticates again.</summary>
    public void InvalidateToken(int index) => _members[index].Tokens?.Invalidate();

    public int Count => _members.Length;

    public string Url(int index) => _members[index].Url;

    public CallInvoker Invoker(int index) => _members[index].Channel.CreateCallInvoker();

    /// <summary>The member for the next attempt: the next in turn that is not sitting out a penalty, else the one whose penalty ends first.</summary>
    public int Pick()
    {
        var start = Interlocked.Increment(ref _next);
        var now = Stopwatch.GetTimestamp();
        var best = -1;
        long bestUntil = long.MaxValue;
        for (var i = 0; i < _members.Length; i++)
        {
            var index = (int)((uint)(start + i) % (uint)_members.Length);
            var until = Volatile.Read(ref _members[index].PenaltyUntil);
            if (until <= now) return index;
            if (until < bestUntil) (best, bestUntil) = (index, until);
        }
        return best;
    }

    /// <summary>The member answered: it is no longer passed over.</summary>
    public void Succeeded(int index)
    {
        Volatile.Write(ref _members[index].PenaltyUntil, 0);
        Volatile.Write(ref _members[index].FailuresInARow, 0);
    }

    /// <summary>The member failed in a way another member may not: pass it over for a while.</summary>
    public void Failed(int index)
    {
        var failures = Math.Min(Interlocked.Increment(ref _members[index].FailuresInARow), 4);
        var penalty = TimeSpan.FromTicks(Math.Min(MaxPenalty.Ticks, MinPenalty.Ticks << (failures - 1)));
        Volatile.Write(ref _members[index].PenaltyUntil, Stopwatch.GetTimestamp() + (long)(penalty.TotalSeconds * Stopwatch.Frequency));
    }

    public void Dispose()
    {
        foreach (var member in _members) member.Channel.Dispose();
    }

    private sealed class Member(string url, GrpcChannel channel, AuthTokens? tokens)
    {
        public readonly string Url = url;
        public readonly GrpcChannel Channel = channel;
        public readonly AuthTokens? Tokens = tokens;
        public long PenaltyUntil;
        public int FailuresInARow;
    }
}

/// <summary>How a failed attempt may be retried.</summary>
internal enum Retry
{
    /// <summary>Not at all: the answer is final (bad request, failed precondition, ...).</summary>
    Never,

    /// <summary>On another member: this one is down, has no leader, or is overloaded.</summary>
    OtherMember,
}

/// <summary>Which failures are worth another attempt, and which are safe to retry for a given call.</summary>
internal static class Failures
{
    /// <summary>etcd's answer to an unknown or expired token: refused before acting, so any call may authenticate again and retry.</summary>
    public const string InvalidAuthToken = "etcdserver: invalid auth token";

    /// <summary>
    /// Whether <paramref name="failure"/> may be retried for a call that is <paramref name="safeToRepeat"/> (a read,
    /// a write carrying an idempotency key, or a naturally idempotent recipe call). A call that is not safe to repeat is
    /// retried only when the server certainly did not act on it (refused for want of a leader, overloaded, or the
    /// connection was never made).
    /// </summary>
    public static Retry Classify(RpcException failure, bool safeToRepeat)
    {
        var detail = failure.Status.Detail ?? "";
        if (CertainlyNotApplied(failure)) return Retry.OtherMember;
        if (!safeToRepeat) return Retry.Never;
        return failure.StatusCode switch
        {
            StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal => Retry.OtherMember,
            // Our own key is still being applied on that member (an earlier attempt): ask again, it answers once done.
            StatusCode.Aborted => Retry.OtherMember,
            StatusCode.Unknown when detail.Contains("leader", StringComparison.Ordinal) => Retry.OtherMember,
            _ => Retry.Never,
        };
    }

    /// <summary>The server refused the call before acting on it, or it was never sent.</summary>
    public static bool CertainlyNotApplied(RpcException failure)
    {
        var detail = failure.Status.Detail ?? "";
        if (detail is "etcdserver: no leader" or "etcdserver: too many requests" or "etcdserver: not capable"
            or "etcdserver: rpc not supported for learner" or "etcdserver: server stopped" or InvalidAuthToken)
            return true;
        // Refused at connect: nothing was sent.
        for (var e = failure.Status.DebugException; e is not null; e = e.InnerException)
            if (e is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable })
                return true;
        return false;
    }
}

/// <summary>
/// A gRPC channel to one Keel (or etcd) member configured as <see cref="KeelClient"/> configures its own: TLS with
/// <see cref="KeelClientOptions.CaFile"/> and the client certificate, and with <see cref="KeelClientOptions.Username"/>
/// a token from Authenticate on that member sent with every call. For tools that call the gRPC stubs directly (the
/// <c>keel</c> CLI does).
/// </summary>
public static class KeelChannel
{
    /// <summary>A channel to <paramref name="url"/> with the TLS and auth settings of <paramref name="options"/> (its endpoints are not used).</summary>
    /// <exception cref="ArgumentException">A certificate or key file cannot be read.</exception>
    public static GrpcChannel Create(string url, KeelClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ChannelSecurity.Load(options).Create(url, options.DialTimeout).Channel;
    }
}

/// <summary>The TLS material and credentials of <see cref="KeelClientOptions"/>, loaded once, applied to each member's channel.</summary>
internal sealed class ChannelSecurity(KeelClientOptions options, X509Certificate2? clientCertificate, X509Certificate2? trustedCa)
{
    public static ChannelSecurity Load(KeelClientOptions options)
    {
        try
        {
            var clientCertificate = options.CertFile is { } certFile ? LoadClientCertificate(certFile, options.KeyFile ?? certFile) : null;
            var trustedCa = options.CaFile is { } caFile ? X509CertificateLoader.LoadCertificateFromFile(caFile) : null;
            return new ChannelSecurity(options, clientCertificate, trustedCa);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new ArgumentException($"keel: cannot load the TLS files ({options.CaFile}, {options.CertFile}, {options.KeyFile}): {error.Message}", error);
        }
    }

    public (GrpcChannel Channel, AuthTokens? Tokens) Create(string url, TimeSpan dialTimeout)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = dialTimeout,
            EnableMultipleHttp2Connections = true,
            // Notices a member that vanished without closing its connections (power loss, SIGKILL behind NAT).
            KeepAlivePingDelay = TimeSpan.FromSeconds(10),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        };
        var secure = url.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
        if (secure)
        {
            var ca = trustedCa;
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = clientCertificate is null ? null : [clientCertificate],
                RemoteCertificateValidationCallback = ca is null ? null : (_, certificate, _, errors) => IssuedBy(certificate, ca, errors),
            };
        }
        var tokens = options.Username is { } user ? new AuthTokens(user, options.Password ?? "") : null;
        var channelOptions = new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true, MaxReceiveMessageSize = null };
        if (tokens is not null)
        {
            channelOptions.Credentials = ChannelCredentials.Create(secure ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure,
                CallCredentials.FromInterceptor(tokens.AddTokenAsync));
            // etcd sends its tokens over plaintext connections too; refusing them would make auth unusable without TLS.
            channelOptions.UnsafeUseInsecureChannelCallCredentials = !secure;
        }
        var channel = GrpcChannel.ForAddress(url, channelOptions);
        tokens?.Attach(channel);
        return (channel, tokens);
    }

    private static X509Certificate2 LoadClientCertificate(string certFile, string keyFile)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        // SslStream needs the key in a form it can use on every platform: round-trip through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The member's certificate chains to <paramref name="trustedCa"/> (etcdctl's <c>--cacert</c>), host name included.</summary>
    private static bool IssuedBy(X509Certificate? certificate, X509Certificate2 trustedCa, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trustedCa);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf);
    }
}

/// <summary>
/// One member's auth token: obtained with Authenticate on that member's channel the first time a call needs it, sent
/// as the <c>token</c> header of every call (unary and streaming), and dropped when the member calls it invalid.
/// </summary>
internal sealed class AuthTokens(string user, string password)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private GrpcChannel? _channel;
    private string? _token;

    public void Attach(GrpcChannel channel) => _channel = channel;

    public void Invalidate() => Volatile.Write(ref _token, null);

    public async Task AddTokenAsync(AuthInterceptorContext context, Metadata metadata)
    {
        // Authenticate itself goes out without a token (it is how one is obtained).
        if (context.MethodName == "Authenticate") return;
        metadata.Add("token", Volatile.Read(ref _token) ?? await AuthenticateAsync(context.CancellationToken).ConfigureAwait(false));
    }

    private async Task<string> AuthenticateAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Volatile.Read(ref _token) is { } fresh) return fresh;
            var response = await new Keel.Protocol.Etcd.Etcdserverpb.Auth.AuthClient(_channel!).AuthenticateAsync(
                new Keel.Protocol.Etcd.Etcdserverpb.AuthenticateRequest { Name = user, Password = password },
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _token, response.Token);
            return response.Token;
        }
        finally
        {
            _gate.Release();
        }
    }
}
