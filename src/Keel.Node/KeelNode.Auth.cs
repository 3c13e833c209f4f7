using Keel.Node.Auth;

namespace Keel.Node;

// Auth: the replicated auth store of etcd (users, roles, permissions, enabled flag, revision). Changes go through the
// log as KvCommandKind.Auth and are applied by the pure AuthStore.Apply; the state is an immutable value, so the
// server reads the current one from any thread to check requests at the boundary.
public sealed partial class KeelNode
{
    private AuthState _auth = AuthState.Empty;

    /// <summary>The auth store as this replica has applied it (immutable: safe to hand to other threads).</summary>
    public AuthState Auth => _auth;

    private Keyring.GossipKeys _gossipKeys = Keyring.GossipKeys.Empty;

    /// <summary>The gossip keyring as this replica has applied it (immutable: safe to hand to other threads).</summary>
    public Keyring.GossipKeys GossipKeys => _gossipKeys;

    private KvResult ApplyKeyring(Keyring.KeyringChange change)
    {
        var (next, refusal) = _gossipKeys.Apply(change);
        if (refusal is not null) return KvResult.Failed(0, KeelError.KeyringRefused(refusal));
        _gossipKeys = next;
        return new KvResult { RequestId = 0 };
    }

    private KvResult ApplyAuth(AuthChange change)
    {
        var (next, status) = AuthStore.Apply(_auth, change);
        if (status != AuthStatus.Ok) return KvResult.Failed(0, KeelError.FromAuth(status));
        _auth = next;
        return new KvResult { RequestId = 0, AuthRevision = next.Revision };
    }
}
