using Keel.Raft;

namespace Keel.Node;

/// <summary>
/// What a <see cref="NodeDriver"/> needs from the machine it runs on: clocks, the network, the waiting clients and a
/// way to write a snapshot file in the background. The server implements it with a thread, sockets and files
/// (<c>NodeHost</c>); the simulator with virtual time, a faulty network and a simulated disk.
/// </summary>
public interface INodeDriverHost
{
    /// <summary>A monotonic clock reading in ms (never decreases).</summary>
    long MonotonicMs { get; }

    /// <summary>The wall clock, Unix ms (may jump).</summary>
    long WallClockMs { get; }

    /// <summary>Puts a peer message on the wire (it may be lost; Raft sends again).</summary>
    void Send(Message message);

    /// <summary>Hands a client its answer.</summary>
    void Answer(KvResult result);

    /// <summary>
    /// Encodes and writes a captured snapshot off the loop, then runs a turn whose work item calls
    /// <see cref="NodeDriver.SnapshotWritten"/>. The node takes no other snapshot until then.
    /// </summary>
    void WriteSnapshotInBackground(SnapshotToPersist snapshot);

    /// <summary>True when the host syncs the WAL off the loop (<see cref="SyncLogInBackground"/>): pipelined persistence.</summary>
    bool SyncsLogInBackground => false;

    /// <summary>
    /// Runs <see cref="Keel.Storage.WalSyncTicket.Sync"/> off the loop (tickets in the order given; one sync may cover
    /// several of one file), then, for each ticket, a work item that calls <see cref="NodeDriver.LogSynced"/> with the
    /// sync's exception or null. Called only when <see cref="SyncsLogInBackground"/> is true.
    /// </summary>
    void SyncLogInBackground(Keel.Storage.WalSyncTicket ticket) =>
        throw new NotSupportedException("this host syncs the log on the loop");

    /// <summary>After every tick, on the loop: the host's own periodic work (peer addresses, watch progress).</summary>
    void OnTicked(long monotonicMs);

    /// <summary>
    /// Before a turn's answers are released, on the loop: the host publishes what a client that sees its answer must
    /// be checked against next (auth, keyring).
    /// </summary>
    void BeforeAnswers();

    /// <summary>After a turn's output went out, on the loop: status, logs, watchers.</summary>
    void AfterTurn();

    /// <summary>
    /// The member applied its own removal from the cluster (<see cref="KeelNode.IsRemoved"/>); called once, after the
    /// turn's output went out (so the removal's own answer reached its client when it was proposed here). The host
    /// must stop the member, loudly, as etcd does: it gets no more entries and must not serve stale reads.
    /// </summary>
    void Removed();
}

/// <summary>Takes the next queued work item of a turn; false when none is queued.</summary>
public delegate bool NextWorkItem(out Action work);

/// <summary>
/// The node loop's logic, one copy for the server and the simulator (issue 11 item 6: the simulator runs exactly what
/// production runs). A turn runs every queued work item (client requests, peer messages, a finished snapshot write) as
/// one batch (group commit: one WAL sync, one round of messages), ticks when a tick is due, and then sends the
/// messages, answers the clients and hands a captured snapshot to the background writer. Appends leave before the
/// node's own WAL write (<see cref="KeelNode.SendBeforePersist"/>: pipelining).
/// </summary>
/// <remarks>
/// No threads, no clocks of its own, no I/O: the host calls <see cref="Start"/> once and <see cref="RunTurn"/>
/// whenever work is queued or <see cref="NextTickMs"/> has come, always from the same thread.
/// </remarks>
public sealed class NodeDriver
{
    /// <summary>At most this many work items run in one turn, so ticks and answers are never starved by a flood.</summary>
    public const int MaxItemsPerTurn = 4096;

    private readonly INodeDriverHost _host;
    private readonly List<Message> _messages = [];
    private List<KvResult> _responses = [];
    private List<KvResult> _answering = [];
    private long _lastTickMonotonicMs = long.MinValue;
    private bool _removalReported;

    /// <summary>Drives <paramref name="node"/>, ticking it every <paramref name="tickEveryMs"/>.</summary>
    public NodeDriver(KeelNode node, INodeDriverHost host, int tickEveryMs)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(tickEveryMs, 1);
        Node = node;
        _host = host;
        TickEveryMs = tickEveryMs;
        node.SendBeforePersist = SendBeforePersist;
        if (host.SyncsLogInBackground) node.SyncLogInBackground = host.SyncLogInBackground;
    }

    /// <summary>The node driven.</summary>
    public KeelNode Node { get; }

    /// <summary>How often the node is ticked.</summary>
    public int TickEveryMs { get; }

    /// <summary>The monotonic time at which the next turn ticks the node; the host runs a turn by then even with no work.</summary>
    public long NextTickMs { get; private set; }

    /// <summary>First tick and output, before any work.</summary>
    public void Start()
    {
        var nowMs = _host.MonotonicMs;
        TickAt(nowMs);
        Flush();
        NextTickMs = nowMs + TickEveryMs;
    }

    /// <summary>
    /// One turn: up to <see cref="MaxItemsPerTurn"/> work items from <paramref name="next"/> as one batch, a tick if one
    /// is due, then the output. Returns how many items ran. An exception from a work item is a bug or a failed disk:
    /// the host must stop the member.
    /// </summary>
    public int RunTurn(NextWorkItem next)
    {
        ArgumentNullException.ThrowIfNull(next);
        Keel.Core.Invariant.Check(_lastTickMonotonicMs != long.MinValue, "the driver was started before its first turn");
        Node.BeginBatch();
        // The node reads the wall clock only when ticked: refresh it first (reads "as of" a time depend on a write's
        // timestamp never being older than its request).
        RefreshWallClock();
        var ran = 0;
        while (ran < MaxItemsPerTurn && next(out var work))
        {
            work();
            ran++;
        }
        // The tick comes after the batch's messages: after a stall (a long fsync, a GC pause) the leader heartbeats that
        // arrived meanwhile count before the missed time does, so a follower does not call an election over its own
        // pause. The node catches up on every Raft tick the stall spanned from this one clock reading.
        var nowMs = _host.MonotonicMs;
        if (nowMs >= NextTickMs)
        {
            TickAt(nowMs);
            NextTickMs += TickEveryMs;
            if (NextTickMs <= nowMs) NextTickMs = nowMs + TickEveryMs;
        }
        Node.EndBatch();
        Flush();
        return ran;
    }

    /// <summary>A pipelined WAL sync ended, with <paramref name="error"/> or null (call it from a work item, on the loop).</summary>
    public void LogSynced(Keel.Storage.WalSyncTicket ticket, Exception? error) => Node.OnLogSynced(ticket, error);

    /// <summary>The background write of a snapshot ended (call it from a work item, on the loop).</summary>
    public void SnapshotWritten(ulong index, ulong term, bool durable) => Node.OnSnapshotPersisted(index, term, durable);

    private void TickAt(long monotonicMs)
    {
        // Never step back, whatever order the readings came in.
        monotonicMs = Math.Max(monotonicMs, _lastTickMonotonicMs);
        _lastTickMonotonicMs = monotonicMs;
        Node.Tick(monotonicMs, _host.WallClockMs);
        _host.OnTicked(monotonicMs);
    }

    /// <summary>Refreshes the node's wall clock without advancing Raft's ticks (the same monotonic time as the last tick).</summary>
    private void RefreshWallClock() => Node.Tick(_lastTickMonotonicMs, _host.WallClockMs);

    // Runs inside the node's Ready handling, before its WAL write and fsync: the appends go out now and the followers
    // write their disks while we write ours. Answers wait for Flush, after the turn.
    private void SendBeforePersist()
    {
        Node.Outbox.DrainTo(_messages, _responses);
        foreach (var message in _messages) _host.Send(message);
        _messages.Clear();
    }

    private void Flush()
    {
        Node.Outbox.DrainTo(_messages, _responses);
        _host.BeforeAnswers();
        foreach (var message in _messages) _host.Send(message);
        _messages.Clear();
        // Swapped out first: an answer may make a client queue its next request before this loop ends.
        (_answering, _responses) = (_responses, _answering);
        foreach (var response in _answering) _host.Answer(response);
        _answering.Clear();
        if (Node.Outbox.TakeSnapshotToPersist() is { } snapshot) _host.WriteSnapshotInBackground(snapshot);
        _host.AfterTurn();
        if (Node.IsRemoved && !_removalReported)
        {
            _removalReported = true;
            _host.Removed();
        }
    }
}
