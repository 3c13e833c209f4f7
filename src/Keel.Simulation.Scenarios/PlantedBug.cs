namespace Keel.Simulation.Scenarios;

/// <summary>Bugs that can be planted on purpose (<c>--plant-bug</c>) to prove that the simulator's checkers catch them.</summary>
public enum PlantedBug
{
    /// <summary>No bug.</summary>
    None,
    /// <summary>On receive, the hybrid clock ignores the sender's timestamp (Now instead of Update): breaks happens-before.</summary>
    HlcIgnoresRemote,
    /// <summary>The hybrid clock's upper bound is never persisted: a restart after a backward clock step reissues old timestamps.</summary>
    HlcForgetsUpperBound,
    /// <summary>A Raft voter forgets it already voted in a term and grants a second vote (raft scenario).</summary>
    RaftVoteTwiceInTerm,
    /// <summary>The kv scenario's WAL sync thread reports syncs it never ran: a crash then loses acknowledged writes.</summary>
    WalSyncLies,
}
