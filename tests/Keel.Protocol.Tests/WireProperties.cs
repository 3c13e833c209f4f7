using FsCheck.Xunit;
using Google.Protobuf;
using K = Keel.Protocol.Etcd.Etcdserverpb;
using KMvcc = Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Protocol.Tests;

/// <summary>
/// Laws of the wire contract over generated values: any message one side writes, the other reads with every field
/// equal and re-writes byte for byte. Every property replays a fixed FsCheck seed, so runs are deterministic.
/// </summary>
public sealed class WireProperties
{
    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public void Any_key_value_crosses_both_ways(byte[]? key, byte[]? value, long createRevision, long modRevision, long version, long lease)
    {
        var client = new Mvccpb.KeyValue
        {
            Key = ByteString.CopyFrom(key ?? []), Value = ByteString.CopyFrom(value ?? []),
            CreateRevision = createRevision, ModRevision = modRevision, Version = version, Lease = lease,
        };
        KMvcc.KeyValue keel = WireAssert.Crosses(client, KMvcc.KeyValue.Parser);
        Mvccpb.KeyValue back = WireAssert.Crosses(keel, Mvccpb.KeyValue.Parser);
        Assert.Equal(client, back);
    }

    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public void Any_range_request_crosses(byte[]? key, byte[]? rangeEnd, long limit, long revision, byte sortOrder, byte sortTarget, bool serializable, bool keysOnly, bool countOnly, long minMod, long maxCreate)
    {
        var client = new Etcdserverpb.RangeRequest
        {
            Key = ByteString.CopyFrom(key ?? []), RangeEnd = ByteString.CopyFrom(rangeEnd ?? []), Limit = limit, Revision = revision,
            SortOrder = (Etcdserverpb.RangeRequest.Types.SortOrder)(sortOrder % 3),
            SortTarget = (Etcdserverpb.RangeRequest.Types.SortTarget)(sortTarget % 5),
            Serializable = serializable, KeysOnly = keysOnly, CountOnly = countOnly, MinModRevision = minMod, MaxCreateRevision = maxCreate,
        };
        K.RangeRequest keel = WireAssert.Crosses(client, K.RangeRequest.Parser);
        Assert.Equal((int)client.SortTarget, (int)keel.SortTarget);
    }

    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public void Any_compare_keeps_its_target_union_case(byte target, byte result, long operand, byte[]? key)
    {
        var compare = new Etcdserverpb.Compare
        {
            Key = ByteString.CopyFrom(key ?? []),
            Result = (Etcdserverpb.Compare.Types.CompareResult)(result % 4),
            Target = (Etcdserverpb.Compare.Types.CompareTarget)(target % 5),
        };
        switch (target % 5)
        {
            case 0: compare.Version = operand; break;
            case 1: compare.CreateRevision = operand; break;
            case 2: compare.ModRevision = operand; break;
            case 3: compare.Value = ByteString.CopyFrom(BitConverter.GetBytes(operand)); break;
            default: compare.Lease = operand; break;
        }

        K.Compare keel = WireAssert.Crosses(compare, K.Compare.Parser);
        Assert.Equal((int)compare.TargetUnionCase, (int)keel.TargetUnionCase);
        Assert.Equal(compare, WireAssert.Crosses(keel, Etcdserverpb.Compare.Parser));
    }

    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public void Minimum_lease_ttl_is_the_smallest_whole_second_covering_one_and_a_half_election_timeouts(int electionTimeoutMsSeed)
    {
        long electionTimeoutMs = 1 + (Math.Abs((long)electionTimeoutMsSeed) % 600_000);
        long minimumTtlSeconds = EtcdErrors.MinimumLeaseTtlSeconds(electionTimeoutMs);

        // In milliseconds times two, to stay in integers: 2 * ttl * 1000 >= 3 * timeout, and one second less would not be.
        Assert.True(2 * minimumTtlSeconds * 1000 >= 3 * electionTimeoutMs);
        Assert.True(2 * (minimumTtlSeconds - 1) * 1000 < 3 * electionTimeoutMs);
    }

    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public void Granted_ttl_is_never_below_the_request_or_the_minimum(long requestedTtlSeconds)
    {
        long? granted = EtcdErrors.GrantedLeaseTtlSeconds(requestedTtlSeconds, EtcdErrors.DefaultElectionTimeoutMs);
        if (requestedTtlSeconds > EtcdErrors.MaxLeaseTtlSeconds)
        {
            Assert.Null(granted);
        }
        else
        {
            Assert.NotNull(granted);
            Assert.True(granted >= requestedTtlSeconds && granted >= 2);
            Assert.True(granted == Math.Max(requestedTtlSeconds, 2));
        }
    }
}
