using Keel.HybridClock;
using Keel.Mvcc;
using Keel.Raft;

namespace Keel.Node;

// Bounded history (issue 11, etcd's compactor package): the leader proposes an ordinary Compact through the log at
// the revision its policy names; followers do nothing of their own, so every replica compacts at the same revision.
public sealed partial class KeelNode
{
    private long _lastAutoCompactionCheckMs = long.MinValue;

    /// <summary>How many compactions this node proposed on its own (auto-compaction, as leader).</summary>
    public int AutoCompactionsProposed { get; private set; }

    private void AutoCompact()
    {
        var policy = _options.AutoCompaction;
        if (!policy.Enabled || !IsLeader || _nowMs == long.MinValue) return;
        if (_lastAutoCompactionCheckMs == long.MinValue) _lastAutoCompactionCheckMs = _nowMs;
        if (_nowMs - _lastAutoCompactionCheckMs < policy.CheckIntervalMs) return;
        _lastAutoCompactionCheckMs = _nowMs;
        var target = AutoCompactionTarget(policy);
        if (target <= Math.Max(1, _store.CompactRevision)) return;
        var data = CommandCodec.Encode(new CommandHeader(NextProposalId(), Id, _clock.Now(_wallMs).Raw), KvCommand.Compact(target));
        if (_raft.Propose(data).Status == ProposeStatus.Appended) AutoCompactionsProposed++;
    }

    /// <summary>The revision the policy compacts at now (at most the current one; 0 when there is none yet).</summary>
    private long AutoCompactionTarget(AutoCompactionPolicy policy)
    {
        if (policy.Mode == AutoCompactionMode.Revision) return _store.CurrentRevision - policy.Retention;
        var cutoffMs = _wallMs - policy.Retention;
        if (cutoffMs <= 0) return 0;
        try
        {
            // The revision current at the cutoff: a read as of that wall time still works afterwards.
            return _store.RevisionAt((long)new HybridTimestamp(Math.Min(cutoffMs, HybridTimestamp.MaxPhysicalMs), HybridTimestamp.MaxLogical).Raw);
        }
        catch (MvccException)
        {
            return 0;   // already compacted past the cutoff
        }
    }
}
