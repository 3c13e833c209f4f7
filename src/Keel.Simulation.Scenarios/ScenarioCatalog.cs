namespace Keel.Simulation.Scenarios;

/// <summary>The scenarios <c>./keel sim</c> can run, by name.</summary>
public static class ScenarioCatalog
{
    /// <summary>The scenario run when none is named.</summary>
    public const string DefaultScenario = "heartbeat";

    /// <summary>Every scenario name with a one-line description.</summary>
    public static IReadOnlyList<(string Name, string Description)> Scenarios { get; } =
    [
        ("heartbeat", "heartbeats with hybrid-clock timestamps over a lossy network with pauses; one real crash; compares failure detectors"),
        ("raft", "a 3, 5 or 7 node Raft cluster under every fault, checked for election, log and state-machine safety, then liveness after healing"),
        ("kv", "the Keel KV node (Raft + WAL + MVCC) on 3 or 5 nodes under every fault; client histories checked for linearizability"),
        ("gossip", "SWIM gossip members (100 by default) with Lifeguard against plain SWIM, digest against full-state anti-entropy; 1% loss, 3 s pauses, one crash"),
    ];

    /// <summary>Creates a fresh scenario instance for one seed.</summary>
    /// <exception cref="ArgumentException">The name is unknown.</exception>
    public static ISimulationScenario Create(string name, ScenarioSettings settings) => name switch
    {
        "heartbeat" => new HeartbeatScenario(new HeartbeatScenarioOptions
        {
            Nodes = settings.Nodes ?? 5,
            Bug = settings.Bug,
            MaxClockStepMs = settings.MaxClockStepMs ?? 2_000,
            NemesisCrashes = settings.NemesisCrashes,
            EnforceGoals = settings.Bug == PlantedBug.None,
        }),
        "raft" => new RaftScenario(new RaftScenarioOptions { Nodes = settings.Nodes, Bug = settings.Bug }),
        "kv" => new KvScenario(KvOptions(settings)),
        "gossip" => new GossipScenario(new GossipScenarioOptions { Nodes = settings.Nodes ?? 100 }),
        _ => throw new ArgumentException($"unknown scenario '{name}'; known: {string.Join(", ", Scenarios.Select(s => s.Name))}", nameof(name)),
    };

    private static KvScenarioOptions KvOptions(ScenarioSettings settings)
    {
        var options = new KvScenarioOptions
        {
            Nodes = settings.Nodes,
            SnapshotEveryEntries = settings.SnapshotEveryEntries,
            SnapshotTrailingEntries = settings.SnapshotEveryEntries is null ? 1_024UL : 10UL,
            BackgroundSnapshots = settings.BackgroundSnapshots,
            JoiningMembers = settings.JoiningMembers,
            RemovingMembers = settings.RemovingMembers,
            SnapshotChunkBytes = settings.SnapshotChunkBytes,
            Bug = settings.Bug,
        };
        // Joining takes an add, maybe a promotion and a snapshot transfer, each retried after timeouts: a longer calm
        // tail (the fault window stays 5 s) gives every run time to finish the first.
        return settings.JoiningMembers > 0 || settings.RemovingMembers > 0
            ? options with { DurationMs = KvScenarioOptions.JoinDurationMs, CalmTailMs = KvScenarioOptions.JoinCalmTailMs }
            : options;
    }
}

/// <summary>Command-line settings shared by scenarios.</summary>
/// <param name="Nodes">Cluster size, or the scenario's default.</param>
/// <param name="Bug">A bug to plant on purpose.</param>
/// <param name="MaxClockStepMs">Largest wall-clock step, or the scenario's default.</param>
/// <param name="NemesisCrashes">Whether the nemesis crashes and restarts nodes besides the scenario's own.</param>
/// <param name="SnapshotEveryEntries">kv: the snapshot interval (10 entries kept for slow followers), or the node default.</param>
/// <param name="BackgroundSnapshots">kv: snapshots captured on the loop and encoded and written later, as the server does.</param>
/// <param name="JoiningMembers">kv: members added to the running cluster (MemberAdd, then the machine starts and joins).</param>
/// <param name="SnapshotChunkBytes">kv: the largest snapshot piece a leader streams in one message, or the node default.</param>
/// <param name="RemovingMembers">kv: founding members removed (MemberRemove) after the joiners, each stopped once removed.</param>
public sealed record ScenarioSettings(int? Nodes = null, PlantedBug Bug = PlantedBug.None, long? MaxClockStepMs = null, bool NemesisCrashes = false,
    int? SnapshotEveryEntries = null, bool BackgroundSnapshots = false, int JoiningMembers = 0, int? SnapshotChunkBytes = null, int RemovingMembers = 0);
