using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Keel.Mvcc;
using Keel.Node.Auth;
using static Keel.Node.Tests.TestCluster;

namespace Keel.Node.Tests;

public sealed class AuthStoreTests
{
    private static AuthState Run(params AuthChange[] changes)
    {
        var state = AuthState.Empty;
        foreach (var change in changes)
        {
            var (next, status) = AuthStore.Apply(state, change);
            Assert.Equal(AuthStatus.Ok, status);
            state = next;
        }
        return state;
    }

    private static AuthStatus Refusal(AuthState state, AuthChange change)
    {
        var (next, status) = AuthStore.Apply(state, change);
        Assert.Same(state, next);
        return status;
    }

    private static Permission Perm(PermissionType type, string key, string end = "") => new(type, B(key), B(end));

    private static readonly AuthChange[] RootSetup =
    [
        new(AuthAction.UserAdd, "root", PasswordHash: "h"),
        new(AuthAction.UserGrantRole, "root", "root"),
    ];

    [Fact]
    public void Enable_requires_the_root_user_with_the_root_role_as_etcd()
    {
        Assert.Equal(AuthStatus.RootUserNotExist, Refusal(AuthState.Empty, new(AuthAction.Enable, "")));
        var rootOnly = Run(new AuthChange(AuthAction.UserAdd, "root", PasswordHash: "h"));
        Assert.Equal(AuthStatus.RootRoleNotExist, Refusal(rootOnly, new(AuthAction.Enable, "")));
        var enabled = Run([.. RootSetup, new(AuthAction.Enable, "")]);
        Assert.True(enabled.Enabled);
        // While enabled, root cannot be deleted nor lose its role.
        Assert.Equal(AuthStatus.InvalidAuthManagement, Refusal(enabled, new(AuthAction.UserDelete, "root")));
        Assert.Equal(AuthStatus.InvalidAuthManagement, Refusal(enabled, new(AuthAction.UserRevokeRole, "root", "root")));
        Assert.Equal("etcdserver: root user does not exist", KeelError.FromAuth(AuthStatus.RootUserNotExist).Message);
        Assert.Equal("etcdserver: root user does not have root role", KeelError.FromAuth(AuthStatus.RootRoleNotExist).Message);
    }

    [Fact]
    public void User_and_role_changes_refuse_with_etcds_errors()
    {
        var state = Run(new AuthChange(AuthAction.UserAdd, "alice", PasswordHash: "h"), new AuthChange(AuthAction.RoleAdd, "reader"));
        Assert.Equal(AuthStatus.UserEmpty, Refusal(state, new(AuthAction.UserAdd, "")));
        Assert.Equal(AuthStatus.UserAlreadyExists, Refusal(state, new(AuthAction.UserAdd, "alice")));
        Assert.Equal(AuthStatus.UserNotFound, Refusal(state, new(AuthAction.UserDelete, "bob")));
        Assert.Equal(AuthStatus.UserNotFound, Refusal(state, new(AuthAction.UserChangePassword, "bob", PasswordHash: "x")));
        Assert.Equal(AuthStatus.RoleNotFound, Refusal(state, new(AuthAction.UserGrantRole, "alice", "writer")));
        Assert.Equal(AuthStatus.RoleNotGranted, Refusal(state, new(AuthAction.UserRevokeRole, "alice", "reader")));
        Assert.Equal(AuthStatus.RoleAlreadyExists, Refusal(state, new(AuthAction.RoleAdd, "reader")));
        Assert.Equal(AuthStatus.RoleEmpty, Refusal(state, new(AuthAction.RoleAdd, "")));
        Assert.Equal(AuthStatus.RoleNotFound, Refusal(state, new(AuthAction.RoleDelete, "writer")));
        Assert.Equal(AuthStatus.PermissionNotGranted, Refusal(state, new(AuthAction.RoleRevokePermission, "reader", Permission: Perm(PermissionType.Read, "a"))));
        Assert.Equal(AuthStatus.PermissionNotGiven, Refusal(state, new(AuthAction.RoleGrantPermission, "reader")));
        Assert.Equal("etcdserver: role is not granted to the user", KeelError.FromAuth(AuthStatus.RoleNotGranted).Message);
        Assert.Equal("FailedPrecondition", KeelError.FromAuth(AuthStatus.UserNotFound).GrpcStatusCode);
        Assert.Equal("InvalidArgument", KeelError.FromAuth(AuthStatus.UserEmpty).GrpcStatusCode);
    }

    [Fact]
    public void Every_change_bumps_the_revision_and_a_no_op_does_not()
    {
        var state = Run(RootSetup);
        Assert.Equal(3UL, state.Revision);
        var (same, status) = AuthStore.Apply(state, new AuthChange(AuthAction.UserGrantRole, "root", "root"));
        Assert.Equal(AuthStatus.Ok, status);
        Assert.Equal(3UL, same.Revision);
        Assert.Equal(4UL, AuthStore.Apply(state, new AuthChange(AuthAction.Enable, "")).State.Revision);
    }

    [Fact]
    public void Deleting_a_role_revokes_it_from_every_user_and_a_grant_on_the_same_range_replaces_the_type()
    {
        var state = Run(
            new AuthChange(AuthAction.RoleAdd, "r"),
            new AuthChange(AuthAction.UserAdd, "alice", PasswordHash: "h"),
            new AuthChange(AuthAction.UserGrantRole, "alice", "r"),
            new AuthChange(AuthAction.RoleGrantPermission, "r", Permission: Perm(PermissionType.Read, "a", "b")),
            new AuthChange(AuthAction.RoleGrantPermission, "r", Permission: Perm(PermissionType.ReadWrite, "a", "b")));
        var only = Assert.Single(state.Roles["r"].Permissions);
        Assert.Equal(PermissionType.ReadWrite, only.Type);
        Assert.True(only.SameRange(B("a"), B("b")));
        var deleted = AuthStore.Apply(state, new AuthChange(AuthAction.RoleDelete, "r")).State;
        Assert.Empty(deleted.Users["alice"].Roles);
    }

    [Fact]
    public void Permission_checks_follow_etcd_for_keys_prefixes_and_open_ranges()
    {
        var state = Run([.. RootSetup,
            new(AuthAction.UserAdd, "alice", PasswordHash: "h"),
            new(AuthAction.RoleAdd, "app"),
            new(AuthAction.UserGrantRole, "alice", "app"),
            new(AuthAction.RoleGrantPermission, "app", Permission: Perm(PermissionType.ReadWrite, "app/", "app0")),
            new(AuthAction.RoleGrantPermission, "app", Permission: Perm(PermissionType.Read, "config")),
            new(AuthAction.RoleGrantPermission, "app", Permission: Perm(PermissionType.Read, "z", "\0")),
            new(AuthAction.Enable, "")]);
        Assert.Equal(AuthCheck.Allowed, state.CheckRange("alice", B("app/x"), [], write: true));
        Assert.Equal(AuthCheck.Allowed, state.CheckRange("alice", B("app/"), B("app0"), write: false));
        Assert.Equal(AuthCheck.Allowed, state.CheckRange("alice", B("config"), [], write: false));
        Assert.Equal(AuthCheck.PermissionDenied, state.CheckRange("alice", B("config"), [], write: true));
        Assert.Equal(AuthCheck.PermissionDenied, state.CheckRange("alice", B("config2"), [], write: false));
        Assert.Equal(AuthCheck.PermissionDenied, state.CheckRange("alice", B("app"), B("app0"), write: false));
        Assert.Equal(AuthCheck.Allowed, state.CheckRange("alice", B("zz"), B("\0"), write: false));
        Assert.Equal(AuthCheck.PermissionDenied, state.CheckRange("alice", B("y"), B("\0"), write: false));
        Assert.Equal(AuthCheck.UserEmpty, state.CheckRange(null, B("app/x"), [], write: false));
        Assert.Equal(AuthCheck.PermissionDenied, state.CheckRange("mallory", B("app/x"), [], write: false));
        Assert.Equal(AuthCheck.Allowed, state.CheckRange("root", B("anything"), B("\0"), write: true));
        Assert.Equal(AuthCheck.PermissionDenied, state.CheckAdmin("alice"));
        Assert.Equal(AuthCheck.Allowed, state.CheckAdmin("root"));
        Assert.Equal(AuthCheck.UserEmpty, state.CheckAdmin(""));
        Assert.Equal(AuthCheck.Allowed, (state with { Enabled = false }).CheckRange(null, B("x"), [], write: true));
    }

    /// <summary>
    /// The coverage check agrees with a brute-force one: over a small alphabet, a range is permitted exactly when every
    /// key in it (all keys up to length 3) lies in some granted interval.
    /// </summary>
    [Property(MaxTest = 300)]
    public bool Range_permission_is_exactly_coverage_of_every_key(byte[][] starts, byte[] lengths, byte queryStart, byte queryLength)
    {
        static byte[] Key(int n) => n == 0 ? [] : [.. Encoding.ASCII.GetBytes(((char)('a' + (n - 1) % 4)).ToString()), .. n > 4 ? new[] { (byte)('a' + n / 4 % 4) } : []];
        var changes = new List<AuthChange> { new(AuthAction.UserAdd, "u", PasswordHash: "h"), new(AuthAction.RoleAdd, "r"), new(AuthAction.UserGrantRole, "u", "r") };
        var granted = new List<(byte[] Start, byte[] End)>();
        for (var i = 0; i < Math.Min(starts.Length, 4); i++)
        {
            var start = Key(1 + (starts[i].Length == 0 ? 0 : starts[i][0]) % 20);
            var length = lengths.Length > i ? lengths[i] % 4 : 0;
            var end = length == 0 ? [] : Key(1 + ((starts[i].Length == 0 ? 0 : starts[i][0]) + length) % 20);
            if (end.Length > 0 && Keel.Core.ByteKeyComparer.Instance.Compare(end, start) <= 0) end = [];
            changes.Add(new(AuthAction.RoleGrantPermission, "r", Permission: new Permission(PermissionType.Read, start, end)));
            granted.Add((start, end.Length == 0 ? [.. start, 0] : end));
        }
        var state = Run([.. changes]);
        state = state with { Enabled = true };
        var qs = Key(1 + queryStart % 20);
        var qe = queryLength % 3 == 0 ? [] : Key(1 + (queryStart + queryLength) % 20);
        if (qe.Length > 0 && Keel.Core.ByteKeyComparer.Instance.Compare(qe, qs) <= 0) qe = [];
        var expected = AllKeys().Where(k => InRange(k, qs, qe.Length == 0 ? [.. qs, 0] : qe)).All(k => granted.Any(g => InRange(k, g.Start, g.End)));
        return (state.CheckRange("u", qs, qe, write: false) == AuthCheck.Allowed) == expected;

        static bool InRange(byte[] k, byte[] s, byte[] e) =>
            Keel.Core.ByteKeyComparer.Instance.Compare(k, s) >= 0 && Keel.Core.ByteKeyComparer.Instance.Compare(k, e) < 0;
        static IEnumerable<byte[]> AllKeys()
        {
            var alphabet = new byte[] { 0, (byte)'a', (byte)'b', (byte)'c', (byte)'d', (byte)'e' };
            foreach (var a in alphabet)
            {
                yield return [a];
                foreach (var b in alphabet)
                {
                    yield return [a, b];
                    foreach (var c in alphabet) yield return [a, b, c];
                }
            }
        }
    }

    [Fact]
    public void Auth_changes_replicate_through_the_log_and_survive_a_snapshot_and_restart()
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with { SnapshotEveryEntries = 20, SnapshotTrailingEntries = 5 });
        var leader = cluster.ElectLeader();
        ulong id = 1;
        foreach (var change in (AuthChange[])[.. RootSetup, new(AuthAction.RoleAdd, "app"),
                     new(AuthAction.RoleGrantPermission, "app", Permission: Perm(PermissionType.ReadWrite, "app/", "app0")), new(AuthAction.Enable, "")])
            Assert.False(cluster.Submit(leader, id++, KvCommand.OfAuth(change)).IsError);
        var refused = cluster.Submit(leader, id++, KvCommand.OfAuth(new AuthChange(AuthAction.UserAdd, "root", PasswordHash: "x")));
        Assert.Equal("etcdserver: user name already exists", refused.Error!.Message);
        for (var i = 0; i < 40; i++) cluster.Submit(leader, id++, KvCommand.Of(new PutRequest { Key = B($"k{i % 5}"), Value = B("v") }));
        cluster.StepUntil(() => cluster.Nodes.Values.All(n => n.AppliedIndex == leader.AppliedIndex));
        foreach (var node in cluster.Nodes.Values) Assert.Equal(leader.Auth, node.Auth, AuthStateComparer.Instance);
        Assert.True(leader.SnapshotIndex > 5);
        var restarted = cluster.Start(leader.Id);
        Assert.Equal(leader.Auth, restarted.Auth, AuthStateComparer.Instance);
        Assert.True(restarted.Auth.Enabled);
    }

    [Fact]
    public void A_version_2_image_without_the_auth_store_still_loads_with_auth_disabled()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        var image = KeelNode.VerifyBackup(leader.EncodeBackup()).ToArray();
        Assert.Equal(5, image[4]);
        // An empty auth state is 17 bytes before the empty gossip keyring (one count byte) and the empty list of removed
        // members (a 4-byte count) that end a version 5 image.
        var version2 = image[..^22];
        version2[4] = 2;
        Assert.Equal(leader.Store.CurrentRevision, KeelNode.DescribeBackup(version2).Revision);
        var damaged = (byte[])image.Clone();
        damaged[^9] = 0xFF;
        Assert.Throws<InvalidCommandException>(() => KeelNode.DescribeBackup(damaged));
    }

    [Fact]
    public void A_corrupt_auth_command_is_refused_by_the_decoder_not_applied()
    {
        var encoded = CommandCodec.Encode(new CommandHeader(1, 1, 1), KvCommand.OfAuth(new AuthChange(AuthAction.RoleGrantPermission, "r", Permission: Perm(PermissionType.Read, "a"))));
        var (_, decoded) = CommandCodec.Decode(encoded);
        Assert.Equal("r", decoded.Auth!.Name);
        Assert.Equal(Perm(PermissionType.Read, "a").Key, decoded.Auth.Permission!.Key);
        var badAction = (byte[])encoded.Clone();
        badAction[27] = 99;
        Assert.Throws<InvalidCommandException>(() => CommandCodec.Decode(badAction));
    }

    /// <summary>Structural equality of auth states (records with immutable collections compare by reference).</summary>
    private sealed class AuthStateComparer : IEqualityComparer<AuthState>
    {
        public static AuthStateComparer Instance { get; } = new();

        public bool Equals(AuthState? x, AuthState? y) => Bytes(x!).AsSpan().SequenceEqual(Bytes(y!));

        public int GetHashCode(AuthState obj) => 0;

        private static byte[] Bytes(AuthState state)
        {
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true)) state.WriteTo(writer);
            return stream.ToArray();
        }
    }
}
