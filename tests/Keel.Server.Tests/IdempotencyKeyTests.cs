using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

public class IdempotencyKeyTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static Metadata Key(string key) => new() { { KeelMetadata.IdempotencyKey, key } };

    [Fact]
    public async Task A_retried_write_with_the_same_key_returns_the_first_answer_and_writes_nothing()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var viaFirst = new KV.KVClient(cluster.Channel(0));
        var viaOther = new KV.KVClient(cluster.Channel(2));
        var first = await viaFirst.PutAsync(new PutRequest { Key = B("order-42"), Value = B("paid") }, Key("7f9c"));
        // The retry goes to another member, as a client that lost its connection would send it.
        var retry = await viaOther.PutAsync(new PutRequest { Key = B("order-42"), Value = B("paid") }, Key("7f9c"));
        Assert.Equal(first.Header.Revision, retry.Header.Revision);
        var read = await viaOther.RangeAsync(new RangeRequest { Key = B("order-42") });
        Assert.Equal((1L, first.Header.Revision), (read.Kvs[0].Version, read.Kvs[0].ModRevision));
        Assert.Equal(first.Header.Revision, read.Header.Revision);

        var txn = new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B("counter"), Value = B("1") } } } };
        var txnFirst = await viaFirst.TxnAsync(txn, Key("txn-1"));
        var txnRetry = await viaFirst.TxnAsync(txn, Key("txn-1"));
        Assert.Equal(txnFirst.Header.Revision, txnRetry.Header.Revision);

        var leases = new Lease.LeaseClient(cluster.Channel(1));
        var grant = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30 }, Key("lease-1"));
        var grantRetry = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30 }, Key("lease-1"));
        Assert.Equal(grant.ID, grantRetry.ID);
        Assert.Single((await leases.LeaseLeasesAsync(new LeaseLeasesRequest())).Leases);
    }

    [Fact]
    public async Task The_same_key_with_a_different_request_is_refused_and_changes_nothing()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var first = await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v1") }, Key("same"));
        var mismatch = await Assert.ThrowsAsync<RpcException>(async () =>
            await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v2") }, Key("same")));
        Assert.Equal(StatusCode.FailedPrecondition, mismatch.StatusCode);
        var read = await kv.RangeAsync(new RangeRequest { Key = B("k") });
        Assert.Equal(("v1", first.Header.Revision), (read.Kvs[0].Value.ToStringUtf8(), read.Header.Revision));

        var empty = await Assert.ThrowsAsync<RpcException>(async () =>
            await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v1") }, Key(new string('x', KeelMetadata.MaxIdempotencyKeyBytes + 1))));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
    }

    [Fact]
    public async Task With_auth_an_idempotency_key_belongs_to_its_user_for_writes_and_fenced_lease_grants()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1, configure: o => o with { BcryptCost = 4 });
        var auth = new Keel.Protocol.Etcd.Etcdserverpb.Auth.AuthClient(cluster.Channel(0));
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "rootpw" });
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" });
        await auth.RoleAddAsync(new AuthRoleAddRequest { Name = "app" });
        await auth.RoleGrantPermissionAsync(new AuthRoleGrantPermissionRequest
        {
            Name = "app",
            Perm = new Keel.Protocol.Etcd.Authpb.Permission { PermType = Keel.Protocol.Etcd.Authpb.Permission.Types.Type.Readwrite, Key = B("app/"), RangeEnd = B("app0") },
        });
        foreach (var user in new[] { "alice", "bob" })
        {
            await auth.UserAddAsync(new AuthUserAddRequest { Name = user, Password = user + "pw" });
            await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = user, Role = "app" });
        }
        await auth.AuthEnableAsync(new AuthEnableRequest());
        async Task<Metadata> As(string user, string key) => new()
        {
            { "token", (await auth.AuthenticateAsync(new AuthenticateRequest { Name = user, Password = user + "pw" })).Token },
            { KeelMetadata.IdempotencyKey, key },
        };
        var alice = await As("alice", "job-1");
        var bob = await As("bob", "job-1");

        // Writes: bob's request under alice's key is his own request (neither a replay of hers nor a mismatch).
        var kv = new KV.KVClient(cluster.Channel(0));
        var alicePut = await kv.PutAsync(new PutRequest { Key = B("app/x"), Value = B("alice") }, alice);
        var bobPut = await kv.PutAsync(new PutRequest { Key = B("app/x"), Value = B("bob") }, bob);
        Assert.True(bobPut.Header.Revision > alicePut.Header.Revision);
        Assert.Equal(alicePut.Header.Revision, (await kv.PutAsync(new PutRequest { Key = B("app/x"), Value = B("alice") }, alice)).Header.Revision);
        var read = await kv.RangeAsync(new RangeRequest { Key = B("app/x") }, alice);
        Assert.Equal("bob", read.Kvs[0].Value.ToStringUtf8());

        // Fencing tokens: each user's grant under the same key is a grant of its own, with its own (greater) token;
        // each user's retry returns that user's lease and token.
        var leases = new Lease.LeaseClient(cluster.Channel(0));
        async Task<(long Lease, long Token)> Grant(Metadata who)
        {
            using var call = leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, who);
            var response = await call;
            return (response.ID, long.Parse(call.GetTrailers().GetValue(KeelMetadata.FencingToken)!, System.Globalization.CultureInfo.InvariantCulture));
        }
        var aliceLeaseKey = await As("alice", "lease-1");
        var bobLeaseKey = await As("bob", "lease-1");
        var aliceGrant = await Grant(aliceLeaseKey);
        var bobGrant = await Grant(bobLeaseKey);
        Assert.NotEqual(aliceGrant.Lease, bobGrant.Lease);
        Assert.True(bobGrant.Token > aliceGrant.Token);
        Assert.Equal(aliceGrant, await Grant(aliceLeaseKey));
        Assert.Equal(bobGrant, await Grant(bobLeaseKey));
    }
}
