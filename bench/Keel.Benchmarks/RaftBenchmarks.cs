using BenchmarkDotNet.Attributes;
using Keel.Core;
using Keel.Quorum;
using Keel.Raft;

namespace Keel.Benchmarks;

/// <summary>
/// The pure CPU cost of the replication protocol: a 3-node cluster in one thread, in-memory storage, messages handed
/// straight from one node to the next (no network, no disk), committing 256-byte entries proposed in batches. The
/// anchor appends the same entries to three in-memory logs: the storage work any replication must do, so the ratio
/// is what the protocol costs on top of it.
/// </summary>
[MemoryDiagnoser]
public class RaftBenchmarks
{
    private const int Entries = 4_096;
    private static readonly byte[] Payload = new byte[256];
    private readonly Queue<Message> _network = new();
    private RaftNode[] _nodes = null!;
    private MemoryRaftStorage[] _storages = null!;
    private MemoryRaftStorage[] _anchorStorages = null!;
    private Entry[] _anchorBatch = null!;
    private ulong _anchorNextIndex;
    private long _applied;

    /// <summary>Proposals handed to the leader between two rounds of message exchange.</summary>
    [Params(1, 64)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var membership = new Membership([1, 2, 3]);
        _storages = new MemoryRaftStorage[3];
        _nodes = new RaftNode[3];
        for (var i = 0; i < 3; i++)
        {
            _storages[i] = new MemoryRaftStorage(membership);
            _storages[i].ApplySnapshot(new Snapshot(new SnapshotMetadata(1, 1, membership), ReadOnlyMemory<byte>.Empty));
            _nodes[i] = new RaftNode(new RaftOptions { Id = (ulong)i + 1, Random = new DeterministicRandom((ulong)i + 1) }, _storages[i]);
        }
        _nodes[0].Campaign();
        Pump();
        if (_nodes[0].Role != RaftRole.Leader) throw new InvalidOperationException("node 1 did not become leader");

        _anchorStorages = [.. Enumerable.Range(0, 3).Select(_ => new MemoryRaftStorage(membership))];
        _anchorBatch = new Entry[BatchSize];
        _anchorNextIndex = 1;
    }

    /// <summary>The anchor: appending the entries to three logs, with nothing else.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Entries)]
    public void Anchor_AppendToThreeLogs()
    {
        for (var done = 0; done < Entries; done += BatchSize)
        {
            for (var i = 0; i < BatchSize; i++) _anchorBatch[i] = Entry.Normal(_anchorNextIndex++, 1, Payload);
            foreach (var storage in _anchorStorages) storage.Append(_anchorBatch);
        }
        Compact(_anchorStorages, _anchorNextIndex - 1);
    }

    /// <summary>Proposes and commits <see cref="Entries"/> entries on all three nodes; reported per committed entry.</summary>
    [Benchmark(OperationsPerInvoke = Entries)]
    public long CommitOnThreeNodes()
    {
        var leader = _nodes[0];
        for (var done = 0; done < Entries; done += BatchSize)
        {
            for (var i = 0; i < BatchSize; i++) leader.Propose(Payload);
            Pump();
        }
        // Keep the logs short, as a real node does at its watermarks, so every invocation measures the same thing.
        foreach (var (node, storage) in _nodes.Zip(_storages))
        {
            var index = node.Log.Committed;
            if (index <= storage.Snapshot.Metadata.Index + 1024) continue;
            storage.CreateSnapshot(index, node.Membership, ReadOnlyMemory<byte>.Empty);
            node.Compact(index);
        }
        return _applied;
    }

    private void Pump()
    {
        bool moved;
        do
        {
            moved = false;
            for (var i = 0; i < _nodes.Length; i++)
            {
                var node = _nodes[i];
                while (node.HasReady())
                {
                    moved = true;
                    var ready = node.GetReady();
                    if (ready.HardState is { } hard) _storages[i].SetHardState(hard);
                    if (ready.Entries.Count > 0) _storages[i].Append(ready.Entries);
                    foreach (var m in ready.Messages) _network.Enqueue(m);
                    foreach (var m in ready.MessagesAfterPersist) _network.Enqueue(m);
                    _applied += ready.CommittedEntries.Count;
                    node.Advance(ready);
                }
            }
            while (_network.TryDequeue(out var message))
            {
                moved = true;
                _nodes[message.To - 1].Step(message);
            }
        } while (moved);
    }

    private static void Compact(MemoryRaftStorage[] storages, ulong index)
    {
        var membership = new Membership([1, 2, 3]);
        foreach (var storage in storages)
        {
            if (index <= storage.Snapshot.Metadata.Index + 1024) continue;
            storage.CreateSnapshot(index, membership, ReadOnlyMemory<byte>.Empty);
            storage.Compact(index);
        }
    }
}
