using BenchmarkDotNet.Attributes;
using Keel.Quorum;

namespace Keel.Benchmarks;

/// <summary>Hot paths of Keel.Quorum: the leader computes the committed index and counts votes on every response.</summary>
[MemoryDiagnoser]
public class QuorumBenchmarks
{
    private readonly struct ArrayAcks(ulong[] indexByVoter) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong memberId, out ulong index)
        {
            index = indexByVoter[memberId];
            return true;
        }
    }

    private readonly struct ArrayVotes(bool?[] voteByVoter) : IVoteLookup
    {
        public bool? GetVote(ulong memberId) => voteByVoter[memberId];
    }

    private MajorityConfig _config = MajorityConfig.Empty;
    private JointConfig _joint = new(MajorityConfig.Empty);
    private ArrayAcks _acks;
    private ArrayVotes _votes;

    /// <summary>Voters in the configuration.</summary>
    [Params(3, 5, 7)]
    public int Voters { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var ids = Enumerable.Range(1, Voters).Select(i => (ulong)i).ToArray();
        _config = new MajorityConfig(ids);
        _joint = new JointConfig(_config, new MajorityConfig(ids.Select(i => i + 1).Where(i => i <= (ulong)Voters + 1)));
        var indexes = new ulong[Voters + 2];
        var votes = new bool?[Voters + 2];
        for (var i = 0; i < indexes.Length; i++)
        {
            indexes[i] = (ulong)((i * 7919) % 1000); // scrambled so the sort has work to do
            votes[i] = (i % 3) switch { 0 => null, 1 => true, _ => false };
        }
        _acks = new ArrayAcks(indexes);
        _votes = new ArrayVotes(votes);
    }

    /// <summary>The anchor: sorting a copy of the acknowledged indexes, the naive way to find the quorum-th largest.</summary>
    [Benchmark(Baseline = true)]
    public ulong Anchor_SortCopy()
    {
        Span<ulong> copy = stackalloc ulong[Voters];
        for (var i = 0; i < Voters; i++) _acks.TryGetAckedIndex((ulong)(i + 1), out copy[i]);
        copy.Sort();
        return copy[Voters - (Voters / 2 + 1)];
    }

    [Benchmark]
    public ulong MajorityCommittedIndex() => _config.CommittedIndex(_acks);

    [Benchmark]
    public ulong JointCommittedIndex() => _joint.CommittedIndex(_acks);

    [Benchmark]
    public VoteResult MajorityVote() => _config.Vote(_votes);

    [Benchmark]
    public VoteResult JointVote() => _joint.Vote(_votes);
}
