using Keel.Storage;

namespace Keel.Server.Hosting;

/// <summary>
/// The member's WAL sync thread (pipelined persistence, issue 12 item 1, as etcd-io/raft's asynchronous storage
/// writes): the node loop writes a batch to the WAL file and hands its <see cref="WalSyncTicket"/> here, then goes on
/// stepping peers, taking requests and sending appends while this thread runs the fdatasync. Tickets queued while a sync
/// ran are covered by one sync of their file (fdatasync covers every write made before it), then reported to the loop in
/// order, each through a work item.
/// </summary>
/// <remarks>
/// Its own thread, not the pool's: it blocks in fdatasync by design, and a pool thread blocked there would starve the
/// transport and gRPC on two cores (as the loop would, see <see cref="LoopWorkQueue"/>). The queue is bounded by the
/// node (<c>KeelNode.MaxReadiesAwaitingSync</c> Readys wait for a sync at most).
/// </remarks>
internal sealed class WalSyncThread
{
    private readonly object _gate = new();
    private readonly Action<List<WalSyncTicket>, Exception?> _synced;
    private List<WalSyncTicket> _queued = [];
    private List<WalSyncTicket> _syncing = [];
    private bool _stopping;

    /// <param name="synced">Called on this thread after each sync with the tickets it covered (in order) and its error or null.</param>
    public WalSyncThread(Action<List<WalSyncTicket>, Exception?> synced)
    {
        _synced = synced;
        var thread = new Thread(Run) { IsBackground = true, Name = "keel-wal-sync" };
        thread.Start();
    }

    /// <summary>Queues a ticket (on the loop).</summary>
    public void Enqueue(WalSyncTicket ticket)
    {
        lock (_gate)
        {
            _queued.Add(ticket);
            if (_queued.Count == 1) Monitor.Pulse(_gate);
        }
    }

    /// <summary>Ends the thread once it has reported what is queued (tickets queued later are dropped).</summary>
    public void Stop()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.Pulse(_gate);
        }
    }

    private void Run()
    {
        while (true)
        {
            lock (_gate)
            {
                while (_queued.Count == 0 && !_stopping) Monitor.Wait(_gate);
                if (_queued.Count == 0) return;
                (_queued, _syncing) = (_syncing, _queued);
            }
            Exception? error = null;
            try
            {
                WalSyncTicket.SyncAll(_syncing);
            }
            catch (Exception exception)
            {
                error = exception;
            }
            _synced(_syncing, error);
            _syncing.Clear();
        }
    }
}
