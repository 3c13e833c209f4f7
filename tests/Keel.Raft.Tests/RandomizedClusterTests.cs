using System.Text;
using FsCheck.Xunit;
using Keel.Core;
using Keel.Quorum;
using Keel.Raft.Tests.Harness;

namespace Keel.Raft.Tests;

/// <summary>
/// Seeded random runs of a whole cluster: message reordering, loss and duplication, partitions, crashes and restarts,
/// compaction, reads and leadership transfers, with the safety checker after every step; then everything heals and the
/// cluster must make progress (liveness). A failure names the seed; <see cref="RunSeed"/> replays it exactly.
/// </summary>
public sealed class RandomizedClusterTests
{
    [Fact]
    public void SafetyAndLivenessHoldAcrossSeeds()
    {
        var delivered = new Dictionary<MessageType, int>();
        ulong committed = 0, maxTerm = 0;
        int confChanges = 0, joint = 0;
        // KEEL_RAFT_SEEDS widens the sweep for a soak run (the default keeps the suite at about a second).
        var seeds = ulong.TryParse(Environment.GetEnvironmentVariable("KEEL_RAFT_SEEDS"), out var n) ? n : 500;
        for (ulong seed = 1; seed <= seeds; seed++)
        {
            try
            {
                var (cluster, checker) = RunSeed(seed, steps: 800);
                foreach (var (type, count) in cluster.Delivered) delivered[type] = delivered.GetValueOrDefault(type) + count;
                committed += checker.MaxCommitted;
                confChanges += cluster.AppliedConfChanges;
                joint += cluster.AppliedJointConfigs;
                maxTerm = Math.Max(maxTerm, cluster.Nodes.Values.Max(h => h.Node.Term));
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"seed {seed} failed (replay with RunSeed({seed}, 800)): {e.Message}", e);
            }
        }
        // The faults must not have made the runs trivial: every path was taken, and the clusters did real work.
        foreach (var type in Enum.GetValues<MessageType>())
            Assert.True(delivered.GetValueOrDefault(type) > 0, $"no {type} message was ever delivered");
        Assert.True(committed > seeds * 8, $"only {committed} entries committed over all seeds");
        Console.WriteLine($"randomized: {committed} entries committed over {seeds} seeds; max term {maxTerm}; {confChanges} conf changes applied ({joint} joint); delivered " +
                          string.Join(", ", delivered.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.True(maxTerm > 5, $"terms never went beyond {maxTerm}");
        Assert.True(confChanges > 100 && joint > 20, $"only {confChanges} configuration changes applied ({joint} joint)");
    }

    /// <summary>The law itself: for any seed (FsCheck draws them, from a fixed replay seed), every run is safe and live.</summary>
    [Property(MaxTest = 60, Replay = "(20261126,1)")]
    public void AnySeedIsSafeAndLive(ulong seed) => RunSeed(seed, steps: 400);

    [Fact]
    public void LongRunsStaySafe()
    {
        var seeds = ulong.TryParse(Environment.GetEnvironmentVariable("KEEL_RAFT_LONG_SEEDS"), out var n) ? n : 10;
        for (var seed = 1000UL; seed < 1000 + seeds; seed++)
        {
            try
            {
                RunSeed(seed, steps: 5000);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"seed {seed} failed (replay with RunSeed({seed}, 5000)): {e.Message}", e);
            }
        }
    }

    public static (ClusterDriver Cluster, SafetyChecker Checker) RunSeed(ulong seed, int steps)
    {
        var random = new DeterministicRandom(seed);
        var cluster = new ClusterDriver(seed);
        var size = random.Chance(0.5) ? 3 : 5;
        var voters = Enumerable.Range(1, size).Select(i => (ulong)i).ToArray();
        var membership = new Membership(voters);
        var preVote = random.Chance(0.7);
        var checkQuorum = random.Chance(0.7);
        cluster.AsyncStorage = random.Chance(0.5);
        for (var i = 1; i <= size; i++)
        {
            cluster.AddNode((ulong)i, membership, o => o with
            {
                PreVote = preVote,
                CheckQuorum = checkQuorum,
                ElectionTimeoutTicks = 5,
                MaxInflightMessages = 4,
                MaxSizePerMessageBytes = 64,
                SnapshotChunkBytes = 32,
                TrailingEntries = 3,
                MaxUncommittedBytes = 4096,
            });
        }
        var checker = new SafetyChecker(cluster);
        var proposals = 0;
        var readsIssued = new Dictionary<ulong, ulong>();
        var readsSeen = new Dictionary<ulong, int>();
        for (var step = 0; step < steps; step++)
        {
            RandomStep(cluster, random, seed, ref proposals, checker, readsIssued);
            checker.CheckStep();
            CheckReads(cluster, readsIssued, readsSeen);
            if (step % 100 == 99) checker.CheckLogMatching();
        }
        checker.CheckLogMatching();
        RequireProgress(cluster, checker, seed);
        checker.CheckLogMatching();
        return (cluster, checker);
    }

    // Linearizable reads: a read answered with index i must see every entry committed before it was requested.
    private static void CheckReads(ClusterDriver cluster, Dictionary<ulong, ulong> issued, Dictionary<ulong, int> seen)
    {
        foreach (var (id, host) in cluster.Nodes)
        {
            var from = seen.GetValueOrDefault(id);
            for (var i = from; i < host.ReadStates.Count; i++)
            {
                var read = host.ReadStates[i];
                if (read.Outcome != ReadOutcome.Ready) continue;
                var committedBefore = issued[read.RequestId];
                Invariant.Check(read.Index >= committedBefore,
                    $"stale read: request {read.RequestId} at node {id} got index {read.Index}, but {committedBefore} was committed before it was issued");
            }
            seen[id] = host.ReadStates.Count;
        }
    }

    private static void RandomStep(ClusterDriver cluster, DeterministicRandom random, ulong seed, ref int proposals,
        SafetyChecker checker, Dictionary<ulong, ulong> readsIssued)
    {
        var ids = cluster.Nodes.Keys.ToArray();
        var id = ids[random.NextInt32(ids.Length)];
        var roll = random.NextInt32(1000);
        switch (roll)
        {
            case < 150:
                cluster.Tick(id, 1);
                break;
            case < 550:
                if (cluster.Network.Count > 0)
                {
                    // Mostly in order, sometimes out of order.
                    var index = random.Chance(0.7) ? 0 : random.NextInt32(cluster.Network.Count);
                    cluster.DeliverAt(index);
                }
                break;
            case < 580:
                if (cluster.Network.Count > 0) cluster.Network.RemoveAt(random.NextInt32(cluster.Network.Count));
                break;
            case < 595:
                if (cluster.Network.Count > 0) cluster.Network.Add(cluster.Network[random.NextInt32(cluster.Network.Count)]);
                break;
            case < 700:
                cluster.ProcessReady(id);
                break;
            case < 800:
                if (!cluster.CompletePersistence(id)) cluster.ProcessReady(id);
                break;
            case < 900:
                cluster[id].Node.Propose(Encoding.UTF8.GetBytes($"s{seed}-{proposals++}"));
                break;
            case < 910:
            {
                cluster.Heal();
                var group = ids.Where(_ => random.Chance(0.4)).ToArray();
                if (group.Length > 0 && group.Length < ids.Length) cluster.Partition(group);
                break;
            }
            case < 930:
                cluster.Heal();
                break;
            case < 937:
                cluster.ProcessReady(id);
                break;
            case < 943:
                cluster[id].Restart(cluster.Random.Split("restart", random.NextInt64(long.MaxValue)));
                break;
            case < 970:
            {
                var host = cluster[id];
                if (host.AppliedIndex > host.Storage.Snapshot.Metadata.Index && host.AppliedIndex <= host.Storage.LastIndex)
                {
                    host.Storage.CreateSnapshot(host.AppliedIndex, host.Node.Membership, host.SnapshotData(host.AppliedIndex));
                    host.Node.Compact(host.AppliedIndex);
                }
                break;
            }
            case < 976:
            {
                // Move members between voter and learner, usually through a joint configuration.
                var changes = ids.Select(n => random.Chance(0.7) ? ConfigurationChangeItem.AddVoter(n) : ConfigurationChangeItem.AddLearner(n))
                    .Where(_ => random.Chance(0.5)).ToArray();
                if (changes.Length == 0) break;
                var transition = (ConfChangeTransition)random.NextInt32(3);
                var node = cluster[id].Node;
                if (node.Membership.IsJoint && transition == ConfChangeTransition.JointExplicit) node.ProposeConfChange(ConfChangeV2.LeaveJointChange);
                else node.ProposeConfChange(new ConfChangeV2(transition, changes));
                break;
            }
            case < 990:
            {
                var requestId = (ulong)random.NextInt64(1, long.MaxValue);
                readsIssued[requestId] = checker.MaxCommitted;
                cluster[id].Node.ReadIndex(requestId);
                break;
            }
            default:
                cluster[id].Node.TransferLeadership(ids[random.NextInt32(ids.Length)]);
                break;
        }
    }

    private static void RequireProgress(ClusterDriver cluster, SafetyChecker checker, ulong seed)
    {
        cluster.Heal();
        var marker = $"final-{seed}";
        for (var round = 0; round < 400; round++)
        {
            foreach (var id in cluster.Nodes.Keys) cluster.Tick(id, 1);
            cluster.Stabilize();
            checker.CheckStep();
            var leader = cluster.Nodes.Values.FirstOrDefault(h => h.Node.Role == RaftRole.Leader);
            if (leader is null) continue;
            if (cluster.Nodes.Values.All(h => h.State.ContainsValue(marker))) return;
            // An explicit joint configuration stays until someone leaves it.
            if (leader.Node.Membership.IsJoint && !leader.Node.Membership.AutoLeave) leader.Node.ProposeConfChange(ConfChangeV2.LeaveJointChange);
            if (round % 5 == 0) leader.Node.Propose(Encoding.UTF8.GetBytes(marker));
        }
        var states = string.Join("; ", cluster.Nodes.Values.Select(h => $"{h.Node} [{h.Node.Membership}] promotable={h.Node.IsPromotable}"));
        var leaderNode = cluster.Nodes.Values.FirstOrDefault(h => h.Node.Role == RaftRole.Leader)?.Node;
        if (leaderNode is not null)
        {
            states += " | progress: " + string.Join("; ", leaderNode.Tracker.Progress.Select(kv => $"{kv.Key}: {kv.Value}"));
            states += $" | leader log first={leaderNode.Log.FirstIndex} snap={leaderNode.Log.Snapshot.Metadata.Index}";
        }
        throw new InvalidOperationException($"no progress after healing: {states}");
    }
}
