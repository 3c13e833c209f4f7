using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading.Channels;
using Keel.Core;
using Keel.Mvcc;
using Keel.Node;
using Keel.Raft;
using Keel.Server.Peers;
using Keel.Storage;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Hosting;

/// <summary>
/// The thin real shell around the I/O-free <see cref="KeelNode"/>: one loop owns the node and is the only code that
/// touches it, so the node needs no locks. gRPC handlers, the peer transport and the timer post work items into the
/// loop's queue; the loop runs every queued item, then drains the node's outbox once (peer messages to the
/// <see cref="PeerTransport"/>, answers to the waiting handlers) and lets the <see cref="WatchHub"/> send new events.
/// Time comes from a <see cref="TimeProvider"/> (monotonic and wall), randomness is seeded from the OS once per boot,
/// and the disk is a <see cref="FileSystemDirectory"/> locked for this process.
/// </summary>
public sealed class NodeHost : IAsyncDisposable
{
    private const int TickEveryMs = 10;

    private readonly Channel<Action> _work = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<ulong, TaskCompletionSource<KvResult>> _waiting = [];
    private readonly List<Message> _messages = [];
    private readonly List<KvResult> _responses = [];
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IDisposable _directoryLock;
    private readonly CancellationTokenSource _stopping = new();
    private readonly long _startTimestamp;
    private ulong _nextRequestId;
    private Task? _loop;
    private Task? _ticker;
    private volatile HostStatus _status = new(0, 0, 0, 0, 0, 0);

    private NodeHost(KeelNode node, FileSystemDirectory directory, IDisposable directoryLock, ulong clusterId,
        IReadOnlyList<InitialMember> members, ServerOptions options, TimeProvider time, ILogger logger)
    {
        Node = node;
        Directory = directory;
        _directoryLock = directoryLock;
        ClusterId = clusterId;
        InitialMembers = members;
        Options = options;
        _time = time;
        _logger = logger;
        _startTimestamp = time.GetTimestamp();
        Watches = new WatchHub(this);
        Transport = new PeerTransport(node.Id, clusterId, options.ListenPeerUrls, message => Post(() => Node.Step(message)), logger);
        foreach (var member in members) Transport.SetPeer(member.Id, member.PeerUrls);
    }

    /// <summary>The node (touch it only from inside a work item: <see cref="InvokeAsync{T}"/>).</summary>
    internal KeelNode Node { get; }

    /// <summary>The data directory.</summary>
    public FileSystemDirectory Directory { get; }

    /// <summary>The cluster id every response header carries.</summary>
    public ulong ClusterId { get; }

    /// <summary>This member's id.</summary>
    public ulong MemberId => Node.Id;

    /// <summary>The bootstrap members.</summary>
    public IReadOnlyList<InitialMember> InitialMembers { get; }

    /// <summary>The server's settings.</summary>
    public ServerOptions Options { get; }

    /// <summary>The peer transport.</summary>
    public PeerTransport Transport { get; }

    /// <summary>Watchers of this member's store.</summary>
    internal WatchHub Watches { get; }

    /// <summary>A recent view of the node (refreshed after every batch of work), safe to read from any thread.</summary>
    public HostStatus Status => _status;

    /// <summary>
    /// Opens the data directory (taking its lock, recovering the WAL) and starts the node, the peer transport and the
    /// loop.
    /// </summary>
    /// <exception cref="WalCorruptionException">The WAL is corrupt beyond a torn tail: the message names file and offset.</exception>
    /// <exception cref="IOException">Another process holds the data directory.</exception>
    public static NodeHost Start(ServerOptions options, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var members = options.ParseInitialCluster();
        var self = members.First(m => m.Name == options.Name);
        var clusterId = ServerOptions.ClusterId(members.Select(m => m.Id));
        System.IO.Directory.CreateDirectory(options.DataDir);
        var directory = new FileSystemDirectory(options.DataDir);
        var directoryLock = directory.LockExclusive();
        KeelNode node;
        try
        {
            var seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
            node = KeelNode.Open(new KeelNodeOptions
            {
                NodeId = self.Id,
                Voters = members.Select(m => m.Id).ToArray(),
                Random = new DeterministicRandom(seed),
                TickMs = options.HeartbeatIntervalMs,
                ElectionTimeoutTicks = Math.Max(2, options.ElectionTimeoutMs / options.HeartbeatIntervalMs),
            }, directory);
        }
        catch
        {
            directoryLock.Dispose();
            throw;
        }
        var host = new NodeHost(node, directory, directoryLock, clusterId, members, options, time, logger);
        host.Transport.Start();
        host._loop = Task.Factory.StartNew(host.RunLoop, TaskCreationOptions.LongRunning).Unwrap();
        host._ticker = Task.Run(host.RunTicker);
        logger.LogInformation("member {Name} ({Id:x16}) of cluster {Cluster:x16} started; data in {DataDir}; applied index {Applied}",
            options.Name, self.Id, clusterId, options.DataDir, node.AppliedIndex);
        return host;
    }

    /// <summary>Proposes a write and waits for its answer (the response or a typed error).</summary>
    public Task<KvResult> WriteAsync(KvCommand command, string? idempotencyKey = null)
    {
        ArgumentNullException.ThrowIfNull(command);
        var waiting = new TaskCompletionSource<KvResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            var requestId = ++_nextRequestId;
            _waiting[requestId] = waiting;
            Node.Submit(requestId, command);
        });
        return waiting.Task;
    }

    /// <summary>Reads linearizably (ReadIndex) or serializably (local) and waits for the answer.</summary>
    public Task<KvResult> ReadAsync(RangeRequest request, bool linearizable)
    {
        ArgumentNullException.ThrowIfNull(request);
        var waiting = new TaskCompletionSource<KvResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            var requestId = ++_nextRequestId;
            _waiting[requestId] = waiting;
            Node.Read(requestId, request, linearizable);
        });
        return waiting.Task;
    }

    /// <summary>Runs <paramref name="work"/> on the loop (the only thread that may touch the node) and returns its result.</summary>
    public Task<T> InvokeAsync<T>(Func<KeelNode, T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                done.SetResult(work(Node));
            }
            catch (Exception exception)
            {
                done.SetException(exception);
            }
        });
        return done.Task;
    }

    /// <summary>An etcd response header for <paramref name="revision"/> (safe from any thread).</summary>
    internal Keel.Protocol.Etcd.Etcdserverpb.ResponseHeader Header(long revision) => new()
    {
        ClusterId = ClusterId,
        MemberId = MemberId,
        Revision = revision,
        RaftTerm = _status.Term,
    };

    /// <summary>The cluster's members as etcd lists them (id, name, peer and client URLs, learner flag).</summary>
    internal Task<IReadOnlyList<Keel.Protocol.Etcd.Etcdserverpb.Member>> MembersAsync() => InvokeAsync<IReadOnlyList<Keel.Protocol.Etcd.Etcdserverpb.Member>>(node =>
    {
        var list = new List<Keel.Protocol.Etcd.Etcdserverpb.Member>();
        foreach (var member in InitialMembers)
        {
            var proto = new Keel.Protocol.Etcd.Etcdserverpb.Member { ID = member.Id, Name = member.Name, IsLearner = node.Raft.Membership.IsLearner(member.Id) };
            proto.PeerURLs.AddRange(member.PeerUrls.Select(u => u.OriginalString.TrimEnd('/')));
            if (member.Id == node.Id) proto.ClientURLs.AddRange(Options.AdvertiseClientUrls.Select(u => u.OriginalString.TrimEnd('/')));
            list.Add(proto);
        }
        return list;
    });

    /// <summary>Queues a work item for the loop.</summary>
    internal void Post(Action work)
    {
        if (!_work.Writer.TryWrite(work)) throw new ObjectDisposedException(nameof(NodeHost), "the node is stopping");
    }

    /// <summary>Milliseconds on the monotonic clock since this host started.</summary>
    internal long MonotonicMs => (long)_time.GetElapsedTime(_startTimestamp).TotalMilliseconds;

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        _work.Writer.TryComplete();
        try
        {
            if (_loop is not null) await _loop.WaitAsync(TimeSpan.FromSeconds(10));
            if (_ticker is not null) await _ticker.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception exception) when (exception is OperationCanceledException or TimeoutException)
        {
        }
        await Transport.DisposeAsync();
        Watches.CancelAll("server is shutting down");
        foreach (var waiting in _waiting.Values) waiting.TrySetResult(KvResult.Failed(0, KeelError.RequestTimedOut));
        _directoryLock.Dispose();
        _stopping.Dispose();
    }

    private async Task RunTicker()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(TickEveryMs), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
                if (!_work.Writer.TryWrite(Tick)) return;
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Tick() => Node.Tick(MonotonicMs, _time.GetUtcNow().ToUnixTimeMilliseconds());

    private async Task RunLoop()
    {
        var reader = _work.Reader;
        Node.Tick(MonotonicMs, _time.GetUtcNow().ToUnixTimeMilliseconds());
        Flush();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            var ran = 0;
            // The node reads the wall clock only when ticked: tick before each batch so a write's hybrid timestamp is
            // never older than the moment its request was queued (reads "as of" a time depend on it).
            // Run everything queued as one batch (group commit): one WAL sync and one round of messages for all of it.
            Node.BeginBatch();
            Tick();
            while (ran < 4096 && reader.TryRead(out var work))
            {
                try
                {
                    work();
                }
                catch (InvariantViolationException violation)
                {
                    // A broken safety invariant means this replica's state can no longer be trusted: stop at once
                    // (fail-stop) rather than serve or replicate anything more.
                    _logger.LogCritical(violation, "safety invariant violated; stopping this member");
                    Environment.FailFast("keel: safety invariant violated: " + violation.Message, violation);
                }
                catch (Exception exception)
                {
                    _logger.LogError(exception, "work item failed");
                }
                ran++;
            }
            Node.EndBatch();
            Flush();
        }
    }

    private void Flush()
    {
        Node.Outbox.DrainTo(_messages, _responses);
        foreach (var message in _messages) Transport.Send(message);
        _messages.Clear();
        foreach (var response in _responses)
            if (_waiting.Remove(response.RequestId, out var waiting)) waiting.TrySetResult(response);
        _responses.Clear();
        _status = new HostStatus(Node.Raft.Leader, Node.Raft.Term, Node.Store.CurrentRevision, Node.Store.CompactRevision,
            Node.AppliedIndex, Node.Raft.Log.Committed);
        Watches.Notify();
    }
}

/// <summary>A recent view of a node, published by the loop after each batch.</summary>
/// <param name="Leader">The leader this member knows (0 = none).</param>
/// <param name="Term">The Raft term.</param>
/// <param name="Revision">The store revision.</param>
/// <param name="CompactRevision">The store's compaction point.</param>
/// <param name="AppliedIndex">The highest applied log index.</param>
/// <param name="CommitIndex">The highest committed log index.</param>
public sealed record HostStatus(ulong Leader, ulong Term, long Revision, long CompactRevision, ulong AppliedIndex, ulong CommitIndex);
