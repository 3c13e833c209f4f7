using Google.Protobuf;
using Keel.Protocol.V1;
using KMvcc = Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Protocol.Tests;

/// <summary>The keel.v1 messages reuse etcd's header and key-value types and round-trip intact.</summary>
public sealed class KeelV1Tests
{
    [Fact]
    public void Read_at_response_reuses_etcd_key_values_and_round_trips()
    {
        var response = new ReadAtResponse
        {
            Header = KvWireTests.KeelHeader(90), ResolvedRevision = 88,
            ResolvedTimestamp = new HybridTimestamp { WallTimeUnixMs = 1_764_000_000_000, Logical = 3 },
            Kvs = { KvWireTests.KeelKv("audit/1", 88) }, More = true, Count = 5,
        };
        WireAssert.FullyPopulated(response);

        ReadAtResponse parsed = ReadAtResponse.Parser.ParseFrom(response.ToByteArray());

        Assert.Equal(response, parsed);
        Assert.Same(KMvcc.KeyValue.Descriptor, ReadAtResponse.Descriptor.FindFieldByName("kvs").MessageType);
        Assert.Equal("etcdserverpb.ResponseHeader", ReadAtResponse.Descriptor.FindFieldByName("header").MessageType.FullName);
    }

    [Fact]
    public void Changes_between_carries_events_with_their_timestamps()
    {
        var response = new ChangesBetweenResponse { Header = KvWireTests.KeelHeader(), More = true, CompactRevision = 4 };
        response.Events.Add(new TimedEvent
        {
            Event = new KMvcc.Event { Type = KMvcc.Event.Types.EventType.Delete, Kv = new KMvcc.KeyValue { Key = WireAssert.Bytes("k"), ModRevision = 9 } },
            Timestamp = new HybridTimestamp { WallTimeUnixMs = 1, Logical = 0 },
        });
        Assert.Equal(response, ChangesBetweenResponse.Parser.ParseFrom(response.ToByteArray()));
    }

    [Fact]
    public void Metadata_names_are_lower_case_ascii_as_grpc_requires()
    {
        foreach (string name in new[] { KeelMetadata.IdempotencyKey, KeelMetadata.FencingToken, KeelMetadata.RevisionTimestamp })
        {
            Assert.Matches("^[a-z0-9][a-z0-9_.-]*$", name);
            Assert.False(name.EndsWith("-bin", StringComparison.Ordinal));
        }

        Assert.Equal(24L * 3_600_000, KeelMetadata.DefaultIdempotencyWindowMs);
    }
}
