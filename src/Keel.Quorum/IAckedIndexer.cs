namespace Keel.Quorum;

/// <summary>
/// Lets quorum code read a member's acknowledged (persisted) log index without allocating, as etcd
/// <c>quorum.AckedIndexer</c> (etcd-io/raft <c>quorum/quorum.go</c>). Implement it on a struct and pass the struct as the
/// generic argument of <see cref="MajorityConfig.CommittedIndex{TAcked}(TAcked)"/> so that calls are not boxed.
/// </summary>
public interface IAckedIndexer
{
    /// <summary>
    /// Gets the highest log index that <paramref name="memberId"/> has acknowledged as persisted. Returns false when
    /// the member has not acknowledged anything; quorum code then counts it as index 0.
    /// </summary>
    bool TryGetAckedIndex(ulong memberId, out ulong index);
}

/// <summary>
/// Lets quorum code read a member's vote without allocating. Implement it on a struct and pass the struct as the
/// generic argument of <see cref="MajorityConfig.Vote{TVotes}(TVotes)"/> so that calls are not boxed.
/// </summary>
public interface IVoteLookup
{
    /// <summary>The vote of <paramref name="memberId"/>: true granted, false rejected, null not received yet.</summary>
    bool? GetVote(ulong memberId);
}

/// <summary>An <see cref="IAckedIndexer"/> over a dictionary of member id to acknowledged index (tests, tools).</summary>
/// <param name="acked">Member id to highest acknowledged index; members that are absent count as 0.</param>
public readonly struct AckedIndexMap(IReadOnlyDictionary<ulong, ulong> acked) : IAckedIndexer
{
    /// <inheritdoc/>
    public bool TryGetAckedIndex(ulong memberId, out ulong index)
    {
        if (acked is not null && acked.TryGetValue(memberId, out index)) return true;
        index = 0;
        return false;
    }
}

/// <summary>An <see cref="IVoteLookup"/> over a dictionary of member id to vote (tests, tools).</summary>
/// <param name="votes">Member id to vote: true granted, false rejected; members that are absent have not voted.</param>
public readonly struct VoteMap(IReadOnlyDictionary<ulong, bool> votes) : IVoteLookup
{
    /// <inheritdoc/>
    public bool? GetVote(ulong memberId) =>
        votes is not null && votes.TryGetValue(memberId, out var granted) ? granted : null;
}
