using Keel.Node.Keyring;
using Keel.Mvcc;

namespace Keel.Node.Tests;

/// <summary>The replicated gossip keyring: memberlist's operations as a pure transition, through the log, in snapshots.</summary>
public sealed class GossipKeysTests
{
    private static readonly byte[] K1 = Enumerable.Repeat((byte)1, 32).ToArray();
    private static readonly byte[] K2 = Enumerable.Repeat((byte)2, 32).ToArray();
    private static readonly byte[] K3 = Enumerable.Repeat((byte)3, 32).ToArray();

    private static byte[] B(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    private static KeyringChange Change(KeyringAction action, params byte[][] keys) => new(action, keys);

    [Fact]
    public void Initialize_install_use_remove_follow_memberlist_and_refusals_change_nothing()
    {
        var keys = GossipKeys.Empty;
        Assert.NotNull(keys.Apply(Change(KeyringAction.Install, K2)).Refusal); // nothing to install into yet
        (keys, var refusal) = keys.Apply(Change(KeyringAction.Initialize, K1, K1));
        Assert.Null(refusal);
        Assert.Equal([K1], keys.Keys);
        var (same, ignored) = keys.Apply(Change(KeyringAction.Initialize, K3)); // only the first initialization counts
        Assert.Null(ignored);
        Assert.True(same.SameAs(keys));
        (keys, _) = keys.Apply(Change(KeyringAction.Install, K2));
        Assert.Equal([K1, K2], keys.Keys);
        Assert.Equal("keel: cannot use a gossip key that is not installed; install it first", keys.Apply(Change(KeyringAction.Use, K3)).Refusal);
        Assert.Equal("keel: cannot remove the primary gossip key; make another key primary first", keys.Apply(Change(KeyringAction.Remove, K1)).Refusal);
        Assert.NotNull(keys.Apply(Change(KeyringAction.Install, new byte[16])).Refusal);
        Assert.NotNull(keys.Apply(Change(KeyringAction.Install, K2, K3)).Refusal);
        (keys, _) = keys.Apply(Change(KeyringAction.Use, K2));
        Assert.Equal([K2, K1], keys.Keys);
        (keys, _) = keys.Apply(Change(KeyringAction.Remove, K1));
        Assert.Equal([K2], keys.Keys);
        var (after, refused) = keys.Apply(Change(KeyringAction.Remove, K3));
        Assert.NotNull(refused);
        Assert.Same(keys, after);
    }

    [Fact]
    public void Keyring_changes_replicate_through_the_log_and_survive_a_snapshot_and_restart()
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with { SnapshotEveryEntries = 20, SnapshotTrailingEntries = 5 });
        var leader = cluster.ElectLeader();
        ulong id = 1;
        Assert.False(cluster.Submit(leader, id++, KvCommand.OfKeyring(Change(KeyringAction.Initialize, K1))).IsError);
        Assert.False(cluster.Submit(leader, id++, KvCommand.OfKeyring(Change(KeyringAction.Install, K2))).IsError);
        Assert.False(cluster.Submit(leader, id++, KvCommand.OfKeyring(Change(KeyringAction.Use, K2))).IsError);
        var refused = cluster.Submit(leader, id++, KvCommand.OfKeyring(Change(KeyringAction.Remove, K2)));
        Assert.Equal(KeelErrorCode.Keyring, refused.Error!.Code);
        Assert.Equal("FailedPrecondition", refused.Error.GrpcStatusCode);
        for (var i = 0; i < 40; i++) cluster.Submit(leader, id++, KvCommand.Of(new PutRequest { Key = B($"k{i % 5}"), Value = B("v") }));
        cluster.StepUntil(() => cluster.Nodes.Values.All(n => n.AppliedIndex == leader.AppliedIndex));
        foreach (var node in cluster.Nodes.Values) Assert.Equal([K2, K1], node.GossipKeys.Keys);
        Assert.True(leader.SnapshotIndex > 5);
        var restarted = cluster.Start(leader.Id);
        Assert.Equal([K2, K1], restarted.GossipKeys.Keys);
    }

    [Fact]
    public void A_keyring_command_round_trips_and_a_corrupt_one_is_refused_by_the_decoder()
    {
        var encoded = CommandCodec.Encode(new CommandHeader(1, 1, 1), KvCommand.OfKeyring(Change(KeyringAction.Initialize, K1, K2)));
        var (_, decoded) = CommandCodec.Decode(encoded);
        Assert.Equal(KvCommandKind.GossipKeyring, decoded.Kind);
        Assert.Equal(KeyringAction.Initialize, decoded.Keyring!.Action);
        Assert.Equal([K1, K2], decoded.Keyring.Keys);
        var badAction = (byte[])encoded.Clone();
        badAction[27] = 99; // after the 25-byte header, the key-length byte and the kind
        Assert.Throws<InvalidCommandException>(() => CommandCodec.Decode(badAction));
        Assert.Throws<Keel.Core.Encoding.EncodingFormatException>(() => CommandCodec.Decode(encoded[..^1])); // truncated
    }

    [Fact]
    public void A_version_3_image_without_the_keyring_loads_with_an_empty_keyring()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        var image = KeelNode.VerifyBackup(leader.EncodeBackup()).ToArray();
        Assert.Equal(0, image[^5]); // no keyring: one zero count byte, before the 4-byte count of removed members
        var version3 = image[..^5];
        version3[4] = 3;
        Assert.Equal(leader.Store.CurrentRevision, KeelNode.DescribeBackup(version3).Revision);
    }
}
