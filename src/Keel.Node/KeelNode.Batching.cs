using Keel.Core;

namespace Keel.Node;

// Group commit: a driver that has many requests at hand defers Raft's Ready handling until all are submitted, so one
// WAL sync and one round of messages carry the whole batch (etcd's raft loop batches the same way, per Ready).
public sealed partial class KeelNode
{
    private int _batchDepth;

    /// <summary>
    /// Starts a batch: until the matching <see cref="EndBatch"/>, calls into the node only queue their effects in Raft;
    /// nothing is persisted, sent or applied. Batches nest.
    /// </summary>
    public void BeginBatch() => _batchDepth++;

    /// <summary>Ends a batch; the outermost end persists, sends and applies everything the batch produced at once.</summary>
    public void EndBatch()
    {
        Invariant.Check(_batchDepth > 0, "EndBatch without BeginBatch");
        if (--_batchDepth == 0) HandleReady();
    }
}
