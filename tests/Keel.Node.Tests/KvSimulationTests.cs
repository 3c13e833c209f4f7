using Keel.Simulation.Scenarios;
using Keel.Simulation;

namespace Keel.Node.Tests;

public sealed class KvSimulationTests
{
    [Fact]
    public void Every_seed_is_linearizable_under_every_fault()
    {
        var failures = new List<string>();
        var completed = 0;
        long turns = 0, batched = 0, readBack = 0, valuesMoved = 0, pipelinedSyncs = 0;
        var deepestPipeline = 0;
        for (ulong seed = 1; seed <= 200; seed++)
        {
            var scenario = new KvScenario();
            var result = SimulationRunner.Run(scenario, seed);
            if (!result.Passed) failures.Add($"seed {seed}: {result.Failure!.Violation}\n  {result.Summary}");
            completed += scenario.History.Operations.Count(o => !o.IsPending);
            turns += scenario.Turns;
            batched += scenario.BatchedTurns;
            readBack += scenario.EntriesReadBack;
            valuesMoved += scenario.ValuesMoved;
            pipelinedSyncs += scenario.PipelinedSyncs;
            deepestPipeline = Math.Max(deepestPipeline, scenario.MaxReadiesAwaitingSync);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(completed > 200 * 20, $"only {completed} operations completed over 200 seeds");
        // The processes run the server's loop driver: work queued close together must have run as one batch.
        Assert.True(batched > turns / 100, $"only {batched} of {turns} loop turns ran more than one work item");
        // The members keep 1 KiB of applied entries in memory: lagging members were caught up from the leaders' WALs.
        Assert.True(readBack > 1000, $"only {readBack} entries were read back from a WAL over 200 seeds");
        // Values live in tiny segments and the leader compacts every second: compactions moved live values out of
        // sparse segments while captures of the old ones were still being read.
        Assert.True(valuesMoved > 1000, $"only {valuesMoved} values were moved between segments over 200 seeds");
        // The WAL is synced as the server syncs it, off the loop and late: members wrote further Readys while earlier
        // ones waited for their syncs, and crashes hit them with unsynced writes in flight.
        Assert.True(pipelinedSyncs > 10_000, $"only {pipelinedSyncs} pipelined WAL syncs ran over 200 seeds");
        Assert.True(deepestPipeline >= 3, $"at most {deepestPipeline} Readys ever waited for their syncs at once");
    }

    [Fact]
    public void A_sync_thread_that_reports_syncs_it_never_ran_is_caught_and_replays_exactly()
    {
        // The kv run is only as strong as its crashes between a write and its sync: a WAL sync that lies must lose
        // acknowledged writes, and the checker must see it.
        KvScenario Scenario() => new(new KvScenarioOptions { Bug = PlantedBug.WalSyncLies });
        SimulationResult? caught = null;
        for (ulong seed = 1; seed <= 30 && caught is null; seed++)
        {
            var result = SimulationRunner.Run(Scenario(), seed);
            if (!result.Passed) caught = result;
        }
        Assert.NotNull(caught);
        Assert.Equal($"./keel sim kv --seed {caught.Seed} --plant-bug WalSyncLies", caught.ReplayCommand);
        var replay = SimulationRunner.Run(Scenario(), caught.Seed);
        Assert.Equal(caught.Failure!.Violation, replay.Failure?.Violation);
        Assert.Equal(caught.Failure.TraceHash, replay.Failure!.TraceHash);
    }
}

public sealed class KvSnapshotSimulationTests
{
    /// <summary>
    /// With a snapshot every 25 entries and 10 kept for slow followers, crashed and partitioned nodes come back through
    /// InstallSnapshot and restarts restore from snapshots, while idempotent retries and lease clients run: every seed
    /// must stay linearizable with converged replicas.
    /// </summary>
    [Fact]
    public void Every_seed_is_linearizable_with_frequent_snapshots_leases_and_idempotent_retries()
    {
        var failures = new List<string>();
        int installed = 0, replays = 0, leases = 0, snapshotted = 0;
        for (ulong seed = 1; seed <= 60; seed++)
        {
            var scenario = new KvScenario(new KvScenarioOptions { SnapshotEveryEntries = 25, SnapshotTrailingEntries = 10, IdempotentWriteChance = 0.6 });
            var result = SimulationRunner.Run(scenario, seed);
            if (!result.Passed) failures.Add($"seed {seed}: {result.Failure!.Violation}\n  {result.Summary}");
            installed += scenario.SnapshotsInstalled;
            replays += scenario.IdempotentReplays;
            leases += scenario.LeasesGranted;
            if (scenario.HighestSnapshotIndex > 1) snapshotted++;
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(snapshotted >= 50, $"only {snapshotted} of 60 runs took a snapshot");
        Assert.True(installed > 0, "no follower was ever sent a snapshot");
        Assert.True(replays > 0, "no idempotent retry was ever answered by a replay");
        Assert.True(leases > 60, $"only {leases} leases granted");
    }
}

public sealed class KvBackgroundSnapshotSimulationTests
{
    /// <summary>
    /// Snapshots as the server takes them (issue 11): the node captures on its loop; the image is encoded and written
    /// up to 600 ms of simulated time later, while the node keeps applying, compacting, installing leaders' snapshots
    /// and crashing. Seeds 1-40 must stay linearizable with converged replicas, and snapshots must actually complete.
    /// Replay one with <c>./keel sim kv --seed N --snapshot-every 25 --background-snapshots</c>.
    /// </summary>
    [Fact]
    public void Every_seed_is_linearizable_with_background_snapshots_encoded_late()
    {
        var failures = new List<string>();
        int snapshotted = 0, installed = 0, written = 0;
        for (ulong seed = 1; seed <= 40; seed++)
        {
            var scenario = new KvScenario(new KvScenarioOptions { SnapshotEveryEntries = 25, SnapshotTrailingEntries = 10, IdempotentWriteChance = 0.6, BackgroundSnapshots = true });
            var result = SimulationRunner.Run(scenario, seed);
            if (!result.Passed) failures.Add($"seed {seed}: {result.Failure!.Violation}\n  {result.Summary}");
            installed += scenario.SnapshotsInstalled;
            written += scenario.BackgroundSnapshotsWritten;
            if (scenario.HighestSnapshotIndex > 1) snapshotted++;
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(written >= 40, $"only {written} background snapshots were written and reported through the loop");
        Assert.True(snapshotted >= 30, $"only {snapshotted} of 40 runs completed a background snapshot");
        Assert.True(installed > 0, "no follower was ever sent a snapshot");
    }
}

public sealed class BrokenReadPathTests
{
    /// <summary>
    /// The checker must be able to fail: with "linearizable" reads served locally by whoever believes it leads, a
    /// deposed leader answers from a stale store and the history is not linearizable on some seed.
    /// </summary>
    [Fact]
    public void Local_reads_on_a_deposed_leader_are_caught_by_the_checker()
    {
        var caught = new List<ulong>();
        for (ulong seed = 1; seed <= 200 && caught.Count == 0; seed++)
        {
            var scenario = new KvScenario(new KvScenarioOptions { UnsafeLocalReadsOnLeader = true, LeaderAffinity = 0.3 });
            var result = SimulationRunner.Run(scenario, seed);
            if (!result.Passed && result.Failure!.Violation.StartsWith("not linearizable", StringComparison.Ordinal)) caught.Add(seed);
        }
        Assert.NotEmpty(caught);
    }
}

public sealed class KvReplayTests
{
    [Fact]
    public void The_same_seed_replays_the_same_run()
    {
        var first = SimulationRunner.Run(new KvScenario(), 42);
        var second = SimulationRunner.Run(new KvScenario(), 42);
        Assert.True(first.Passed, first.Failure?.Violation);
        Assert.Equal(first.TraceHash, second.TraceHash);
        Assert.Equal(first.EventCount, second.EventCount);
        Assert.Equal(first.Summary, second.Summary);
    }
}

public sealed class KvJoinSimulationTests
{
    /// <summary>
    /// Members join the running cluster as an operator adds them (issue 11 item 6): MemberAdd (as a voter, or as a
    /// learner promoted later), then the new machine starts empty with JoinExisting and learns everything from the
    /// leader's snapshot, streamed in 256-byte pieces, under every fault, with a snapshot every 10 entries written in the
    /// background, so newer snapshots are saved while older ones are still being streamed. Every seed must stay
    /// linearizable, with converged replicas and member tables; every admitted joiner must end a caught-up voter; and no
    /// transfer may be abandoned, since retention keeps a file while a leader streams it (without that, 3 of these 40
    /// seeds lost a transfer, and before transfers could be abandoned the leader threw). Then a founder (perhaps the
    /// leader) is removed: it must leave the configuration and member tables, and stop by itself once it applied its
    /// removal. Replay one with <c>./keel sim kv --seed N --snapshot-every 10 --background-snapshots
    /// --snapshot-chunk-bytes 256 --join 2 --remove 1</c>.
    /// </summary>
    [Fact]
    public void Every_seed_is_linearizable_while_members_join_learners_are_promoted_and_a_founder_is_removed()
    {
        var failures = new List<string>();
        int joined = 0, promoted = 0, installed = 0, removed = 0, stoppedThemselves = 0, told = 0;
        long abandoned = 0;
        const int seeds = 40;
        for (ulong seed = 1; seed <= seeds; seed++)
        {
            var scenario = JoinAndRemoveScenario();
            var result = SimulationRunner.Run(scenario, seed);
            if (!result.Passed) failures.Add($"seed {seed}: {result.Failure!.Violation}\n  {result.Summary}\n  {result.ReplayCommand}");
            joined += scenario.JoinedMembers;
            promoted += scenario.LearnersPromoted;
            installed += scenario.SnapshotsInstalled;
            abandoned += scenario.SnapshotTransfersAbandoned;
            removed += scenario.RemovedMembers;
            stoppedThemselves += scenario.MembersStoppedThemselves;
            told += scenario.MembersToldTheyWereRemoved;
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(joined >= seeds, $"only {joined} members joined over {seeds} seeds");
        Assert.True(promoted > 0, "no joiner was added as a learner and promoted");
        Assert.True(installed >= joined, $"{installed} snapshots installed for {joined} joiners, each of which starts empty");
        Assert.Equal(0, abandoned);
        Assert.True(removed >= seeds / 2, $"only {removed} founders removed over {seeds} seeds");
        // A removed member learns its removal from the commit its peers still send it, or, cut off by a partition
        // until the commit went by, from a peer's removal notice once it reaches one: 39 of 40 stopped by themselves
        // when this was written (10 of them told by a peer; the last was still cut off when the operator stopped it),
        // 36 of 40 without the notice, 5 of 40 while peers dropped a removed member with the member table.
        Assert.True(stoppedThemselves * 20 >= removed * 19, $"only {stoppedThemselves} of {removed} removed members stopped by themselves");
        Assert.True(told > 0, "no removed member was told of its removal by a peer");
    }

    /// <summary>
    /// Seed 1050 of the join/remove run: a joiner restored a snapshot taken before the next joiner was added, and that
    /// next joiner then led. The first had no address for its leader until it applied that admission, and the server's
    /// transport, which the simulator models since 2026-12-05, dropped its answers: it fell behind for good (it fails
    /// without answers over the leader's own connection). Replay with <c>./keel sim kv --seed 1050 --snapshot-every 10
    /// --background-snapshots --snapshot-chunk-bytes 256 --join 2 --remove 1</c>.
    /// </summary>
    [Fact]
    public void A_joiner_answers_a_leader_added_after_the_snapshot_it_restored()
    {
        var scenario = JoinAndRemoveScenario();
        var result = SimulationRunner.Run(scenario, 1050);
        Assert.True(result.Passed, $"{result.Failure?.Violation}\n{result.Summary}\n{result.ReplayCommand}");
        Assert.Equal(2, scenario.JoinedMembers);
    }

    // Two members join (learners promoted on a coin flip), a founder is removed, snapshots every 10 entries streamed in
    // 256-byte chunks: `./keel sim kv --snapshot-every 10 --background-snapshots --snapshot-chunk-bytes 256 --join 2 --remove 1`.
    private static KvScenario JoinAndRemoveScenario() => new(new KvScenarioOptions
    {
        SnapshotEveryEntries = 10,
        SnapshotTrailingEntries = 10,
        SnapshotChunkBytes = 256,
        BackgroundSnapshots = true,
        JoiningMembers = 2,
        RemovingMembers = 1,
        DurationMs = KvScenarioOptions.JoinDurationMs,
        CalmTailMs = KvScenarioOptions.JoinCalmTailMs,
    });
}
