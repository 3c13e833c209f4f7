using BenchmarkDotNet.Attributes;
using Keel.Core;
using Keel.Gossip;

namespace Keel.Benchmarks;

/// <summary>Gossip hot paths: sealing/opening packets (AES-256-GCM) and the core answering a ping.</summary>
[MemoryDiagnoser]
public class GossipBenchmarks
{
    private static readonly byte[] Key = "keel-gossip-bench-key-0123456789"u8.ToArray();
    private GossipSecureChannel _sender = null!;
    private GossipSecureChannel _receiver = null!;
    private GossipMessage _ping = null!;
    private GossipMessage _fullPacket = null!;
    private byte[] _fullEncoded = null!;
    private SwimMember _member = null!;
    private readonly List<OutboundMessage> _outbox = [];
    private long _nowMs;

    [GlobalSetup]
    public void Setup()
    {
        _sender = new GossipSecureChannel(1, new GossipKeyring(Key), 1, System.Security.Cryptography.RandomNumberGenerator.Fill);
        _receiver = new GossipSecureChannel(2, new GossipKeyring(Key), 1, System.Security.Cryptography.RandomNumberGenerator.Fill);
        _ping = new GossipMessage(GossipMessageKind.Ping) { ProbeSequence = 5, Target = 2 };
        _fullPacket = new GossipMessage(GossipMessageKind.Gossip);
        for (ulong i = 1; i <= 54; i++) _fullPacket.Updates.Add(new MemberUpdate(i, MemberStatus.Suspect, (long)i, 7));
        _fullEncoded = GossipCodec.Encode(_fullPacket);
        _member = new SwimMember(2, new GossipOptions(), new DeterministicRandom(1), 0);
        var hello = new GossipMessage(GossipMessageKind.Gossip);
        for (ulong i = 1; i <= 1000; i++) hello.Updates.Add(new MemberUpdate(i, MemberStatus.Alive, 0, i));
        _member.Receive(1, hello, 0, _outbox);
        for (long t = 0; t < 120_000; t += 100) { _outbox.Clear(); _member.Tick(t, _outbox); } // drain the join broadcasts
        _nowMs = 120_000;
    }

    [Benchmark(Description = "seal + open ping (48 B)")]
    public OpenOutcome SealOpenPing() => _receiver.Open(_sender.Seal(_ping), out _, out _);

    [Benchmark(Description = "seal + open full packet (54 updates)")]
    public OpenOutcome SealOpenFull() => _receiver.Open(_sender.Seal(_fullPacket), out _, out _);

    [Benchmark(Description = "decode full packet")]
    public int DecodeFull() => GossipCodec.Decode(_fullEncoded).Updates.Count;

    [Benchmark(Description = "digest request: root + 128 bucket hashes (N = 1000)")]
    public int DigestRequest() => _member.BucketHashes(SwimMember.BucketCountFor(_member.KnownCount)).Length + (int)(_member.RootHash() & 1);

    [Benchmark(Description = "core answers a ping (N = 1000)")]
    public int ReceivePing()
    {
        _outbox.Clear();
        _member.Receive(1, _ping, _nowMs += 20, _outbox);
        return _outbox.Count;
    }
}
