using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Keel.Node.Auth;
using Keel.Protocol;
using Keel.Server.Hosting;

namespace Keel.Server.Auth;

/// <summary>
/// The permission checks of etcd's auth store at the client boundary (etcd <c>server/auth/store.go</c> and
/// <c>etcdserver/apply_auth.go</c>): who the caller is (the <c>token</c> metadata, or the client certificate's common
/// name with <c>--client-cert-auth</c>), and whether the applied auth state lets them do what they ask. A request the
/// state refuses is never proposed. While auth is disabled every check passes.
/// </summary>
public sealed class AuthGate
{
    /// <summary>The gRPC metadata key of the token (etcd's).</summary>
    public const string TokenMetadataKey = "token";

    private readonly NodeHost _host;

    /// <summary>A gate reading <paramref name="host"/>'s applied auth state and resolving tokens with <paramref name="tokens"/>.</summary>
    public AuthGate(NodeHost host, IAuthTokens tokens)
    {
        _host = host;
        Tokens = tokens;
    }

    /// <summary>The token provider (Authenticate issues through it).</summary>
    public IAuthTokens Tokens { get; }

    /// <summary>The applied auth state.</summary>
    public AuthState State => _host.Auth;

    /// <summary>
    /// The caller: null while auth is disabled; the token's user; else the certificate's CN (with
    /// <c>--client-cert-auth</c>); else "" (a user-less request, refused by every check with "user name is empty").
    /// </summary>
    /// <exception cref="RpcException">A token was given and it is unknown, expired or forged ("etcdserver: invalid auth token").</exception>
    public string? UserOf(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!State.Enabled) return null;
        var token = context.RequestHeaders.GetValue(TokenMetadataKey);
        if (!string.IsNullOrEmpty(token))
            return Tokens.Resolve(token) is { } info ? info.User : throw EtcdErrors.InvalidAuthToken.ToRpcException();
        if (_host.Options.ClientCertAuth && CommonName(context) is { Length: > 0 } commonName) return commonName;
        return "";
    }

    private static string? CommonName(ServerCallContext context)
    {
        try
        {
            return context.GetHttpContext().Connection.ClientCertificate?.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        }
        catch (Exception e) when (e is InvalidOperationException or CryptographicException)
        {
            return null;
        }
    }

    /// <summary>Read permission on a key or range (etcd IsRangePermitted).</summary>
    public void CheckRead(ServerCallContext context, byte[] key, byte[] rangeEnd) => Throw(State.CheckRange(UserOf(context), key, rangeEnd, write: false));

    /// <summary>Write permission on a key or range (etcd IsPutPermitted / IsDeleteRangePermitted).</summary>
    public void CheckWrite(ServerCallContext context, byte[] key, byte[] rangeEnd) => Throw(State.CheckRange(UserOf(context), key, rangeEnd, write: true));

    /// <summary>The root role (etcd IsAdminPermitted): auth management, maintenance and membership calls.</summary>
    public void CheckAdmin(ServerCallContext context) => Throw(State.CheckAdmin(UserOf(context)));

    /// <summary>
    /// Every part of a transaction (etcd checkTxnAuth): read on each compare and range, write on each put and delete
    /// (and read on a delete that returns the previous values), across nested transactions too.
    /// </summary>
    public void CheckTxn(ServerCallContext context, Keel.Mvcc.TxnRequest txn)
    {
        ArgumentNullException.ThrowIfNull(txn);
        var state = State;
        if (!state.Enabled) return;
        var user = UserOf(context);
        CheckTxn(state, user, txn, 0);
    }

    private static void CheckTxn(AuthState state, string? user, Keel.Mvcc.TxnRequest txn, int depth)
    {
        foreach (var compare in txn.Compares) Throw(state.CheckRange(user, compare.Key, compare.RangeEnd, write: false));
        foreach (var op in txn.Success.Concat(txn.Failure))
        {
            if (op.Range is { } range) Throw(state.CheckRange(user, range.Key, range.RangeEnd, write: false));
            else if (op.Put is { } put)
            {
                Throw(state.CheckRange(user, put.Key, [], write: true));
                if (put.PrevKv) Throw(state.CheckRange(user, put.Key, [], write: false));
            }
            else if (op.DeleteRange is { } delete)
            {
                if (delete.PrevKv) Throw(state.CheckRange(user, delete.Key, delete.RangeEnd, write: false));
                Throw(state.CheckRange(user, delete.Key, delete.RangeEnd, write: true));
            }
            else if (op.Txn is { } nested && depth < 64) CheckTxn(state, user, nested, depth + 1);
        }
    }

    /// <summary>
    /// Write permission on every key attached to <paramref name="leaseId"/> (etcd checkLeasePuts): revoking a lease
    /// deletes them, and attaching a key to a lease whose keys the caller cannot write would let it revoke them.
    /// </summary>
    public async Task CheckLeaseKeysAsync(ServerCallContext context, long leaseId)
    {
        var state = State;
        if (!state.Enabled || leaseId == 0) return;
        var user = UserOf(context);
        if (string.IsNullOrEmpty(user)) Throw(AuthCheck.UserEmpty);
        if (state.CheckAdmin(user) == AuthCheck.Allowed) return;
        var keys = await _host.InvokeAsync(node => node.LeaseTimeToLive(leaseId, includeKeys: true).Keys);
        foreach (var key in keys) Throw(state.CheckRange(user, key, [], write: true));
    }

    /// <summary>Throws etcd's error for a refused check.</summary>
    public static void Throw(AuthCheck check)
    {
        switch (check)
        {
            case AuthCheck.Allowed: return;
            case AuthCheck.UserEmpty: throw new RpcException(new Status(StatusCode.InvalidArgument, "etcdserver: user name is empty"));
            case AuthCheck.UserNotFound: throw new RpcException(new Status(StatusCode.FailedPrecondition, "etcdserver: user name not found"));
            default: throw EtcdErrors.PermissionDenied.ToRpcException();
        }
    }
}
