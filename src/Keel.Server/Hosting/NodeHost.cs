using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading.Channels;
using Keel.Core;
using Keel.Core.Encoding;
using Keel.Mvcc;
using Keel.Node;
using Keel.Raft;
using Keel.Server.Observability;
using Keel.Server.Peers;
using Keel.Server.Security;
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
    private const int LoopReportEverySeconds = 10;
    private const long SlowBatchMs = 250;

    private readonly LoopWorkQueue _work = new();
    private readonly NodeDriver _driver;
    private readonly Dictionary<ulong, TaskCompletionSource<KvResult>> _waiting = [];
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IDisposable _directoryLock;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _removed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _startTimestamp;
    private ulong _nextRequestId;
    private Task? _loop;
    private Task? _publisher;
    private long _leaderLastArrivedMs;
    private long _lastProgressNotifyMs;
    private volatile HostStatus _status = new(0, 0, 0, 0, 0, 0);
    private volatile Keel.Node.Auth.AuthState _auth;
    private volatile Keel.Node.Keyring.GossipKeys _gossipKeys;
    // Serializable reads are served from this view on the RPC's thread; null once the store changed (the loop drops it
    // before the turn that changed it answers anyone) until a serializable read asks the loop for a new one.
    private volatile StoreReadView? _readView;
    private int _readViewWanted;
    private long _queuedItems;
    private long _queuedRequests;
    private long _queuedPeerMessages;
    private long _requestsRefused;
    private long _peerMessagesDropped;
    private long _lastProgressMs;
    private long _invalidEntriesReported;
    private bool _diskFullReported;

    private NodeHost(KeelNode node, FileSystemDirectory directory, IDisposable directoryLock, ulong clusterId,
        IReadOnlyList<InitialMember> members, ServerOptions options, TimeProvider time, ILogger logger, NodeHostStatistics statistics,
        PeerSecurity peerSecurity)
    {
        Statistics = statistics;
        Node = node;
        // Known before the first request: a restarted member with auth enabled never serves one unchecked.
        _auth = node.Auth;
        _gossipKeys = node.GossipKeys;
        Directory = directory;
        _directoryLock = directoryLock;
        InitialMembers = members;
        Options = options;
        _time = time;
        _logger = logger;
        _startTimestamp = time.GetTimestamp();
        Watches = new WatchHub(this);
        _driver = new NodeDriver(node, new DriverHost(this), TickEveryMs);
        Transport = new PeerTransport(node.Id, clusterId, options.ListenPeerUrls, PostPeerMessage, logger,
            PeerTransportOptions.ForRaft(options.HeartbeatIntervalMs, options.ElectionTimeoutMs), peerSecurity);
        Transport.ClusterIdLearned += learned =>
        {
            WriteIdentity(directory, new MemberIdentity(node.Id, learned, Joined: true));
            logger.LogInformation("joined cluster {Cluster:x16}", learned);
        };
        Transport.RemovedByPeer += OnRemovalNotice;
        // By name, not id: a member that joins an existing cluster has the id the cluster gave it, not the one the
        // flags would derive, and must not dial itself under the other id.
        foreach (var member in members.Where(m => m.Name != options.Name))
        {
            var urls = member.PeerUrls.Select(u => new Uri(u)).ToArray();
            Transport.SetPeer(member.Id, urls);
            _flagPeerUrls[member.Id] = urls;
            // A joiner's flags name the current members, and those added with `member add` are known to the cluster by
            // the id hashed from their peer URLs alone (KeelNode.MemberIdFor), not by the bootstrap derivation from the
            // flags. Both are dialed until the member table says which is real; SyncPeers drops the other.
            var addedId = KeelNode.MemberIdFor(member.PeerUrls);
            if (addedId != node.Id && addedId != member.Id)
            {
                Transport.SetPeer(addedId, urls);
                _flagPeerUrls[addedId] = urls;
            }
        }
    }

    // Where the flags (--initial-cluster) say each member is, under both ids it may have: how a joiner reaches a leader
    // its member table does not list yet (SyncPeers).
    private readonly Dictionary<ulong, Uri[]> _flagPeerUrls = [];

    /// <summary>The node (touch it only from inside a work item: <see cref="InvokeAsync{T}"/>).</summary>
    internal KeelNode Node { get; }

    /// <summary>The data directory.</summary>
    public FileSystemDirectory Directory { get; }

    /// <summary>The cluster id every response header carries.</summary>
    public ulong ClusterId => Transport.ClusterId;

    /// <summary>This member's id.</summary>
    public ulong MemberId => Node.Id;

    /// <summary>
    /// Completes when this member applied its own removal from the cluster (etcd: "the member has been permanently
    /// removed from the cluster"): the server then stops, as etcd does, instead of lingering as a member nobody sends
    /// entries to.
    /// </summary>
    public Task RemovedFromCluster => _removed.Task;

    private void OnRemovedFromCluster()
    {
        var how = Node.RemovalNoticeFrom is 0 ? "it applied its removal" : $"member {Node.RemovalNoticeFrom:x16} told it so; it was cut off when the removal committed";
        _logger.LogError("member {Name} ({Id:x16}) was removed from the cluster ({How}; etcdserver: the member has been permanently removed from the cluster); it stops now. " +
            "Its data directory {DataDir} must not be reused: to bring it back, add it again (member add) and start it with an empty data directory and --initial-cluster-state existing",
            Options.Name, MemberId, how, Options.DataDir);
        _removed.TrySetResult();
    }

    // From a transport I/O thread: a peer refused our connection because its replicated state says we were removed.
    // The node decides on the loop whether the removal is of this incarnation (KeelNode.AcceptRemovalNotice).
    private void OnRemovalNotice(ulong peer, ulong removedAtIndex)
    {
        try
        {
            Post(() =>
            {
                if (Node.AcceptRemovalNotice(peer, removedAtIndex)) return; // the driver reports it after the turn
                if (Interlocked.Increment(ref _removalNoticesRefused) is var refused && (refused <= 5 || (refused & (refused - 1)) == 0))
                    _logger.LogWarning("peer {Peer:x16} says this member was removed by the entry at index {Index}, but this member's state " +
                        "(applied index {Applied}, configuration {Configuration}) shows a later admission; the peer is behind, so the notice is ignored ({Refused} so far)",
                        peer, removedAtIndex, Node.AppliedIndex, Node.Raft.Membership, refused);
            });
        }
        catch (ObjectDisposedException)
        {
            // Stopping anyway.
        }
    }

    private long _removalNoticesRefused;

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
    /// The auth store as this member has applied it (users, roles, enabled flag): published before the answers of a
    /// batch are released, so a client that saw its auth change succeed is checked against it on its next request.
    /// </summary>
    public Keel.Node.Auth.AuthState Auth => _auth;

    /// <summary>The replicated gossip keyring as this member has applied it (empty until a leader initialized it).</summary>
    public Keel.Node.Keyring.GossipKeys GossipKeys => _gossipKeys;

    /// <summary>Counters for metrics and the dashboard (this host's own: servers in one process never mix).</summary>
    public NodeHostStatistics Statistics { get; }

    /// <summary>Client requests queued for the loop right now (refused past <see cref="ServerOptions.MaxQueuedRequests"/>).</summary>
    public long QueuedRequests => Volatile.Read(ref _queuedRequests);

    /// <summary>Work items of any kind (requests, peer messages, ticks) queued for the loop right now.</summary>
    public long QueuedItems => Volatile.Read(ref _queuedItems);

    /// <summary>
    /// Opens the data directory (taking its lock, recovering the WAL) and starts the node, the peer transport and the
    /// loop.
    /// </summary>
    /// <exception cref="WalCorruptionException">The WAL is corrupt beyond a torn tail: the message names file and offset.</exception>
    /// <exception cref="IOException">Another process holds the data directory.</exception>
    public static NodeHost Start(ServerOptions options, TimeProvider time, ILogger logger) => Start(options, time, logger, new NodeHostStatistics());

    /// <summary>Starts a host whose disk syncs, batches and writes are counted into <paramref name="statistics"/>.</summary>
    public static NodeHost Start(ServerOptions options, TimeProvider time, ILogger logger, NodeHostStatistics statistics)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(statistics);
        var members = options.ParseInitialCluster();
        System.IO.Directory.CreateDirectory(options.DataDir);
        var peerSecurity = CreatePeerSecurity(options, logger);
        var directory = new FileSystemDirectory(options.DataDir);
        var directoryLock = directory.LockExclusive();
        KeelNode node;
        ulong clusterId;
        try
        {
            var identity = ResolveIdentity(options, members, directory);
            var (memberId, joining) = (identity.MemberId, identity.Joined);
            clusterId = identity.ClusterId;
            var seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
            // A data directory made by `keel snapshot restore` starts a new cluster from that backup; the file stays,
            // since until the first snapshot the initial state is rebuilt from it at every start.
            var restorePath = Path.Combine(directory.Path, RestoreFile);
            var restoreImage = !joining && File.Exists(restorePath)
                ? KeelNode.VerifyBackup(File.ReadAllBytes(restorePath))
                : ReadOnlyMemory<byte>.Empty;
            node = KeelNode.Open(new KeelNodeOptions
            {
                NodeId = memberId,
                // A joining member ignores these and learns everything, its own admission included, from the leader.
                InitialMembers = members,
                JoinExisting = joining,
                Random = new DeterministicRandom(seed),
                TickMs = options.HeartbeatIntervalMs,
                ElectionTimeoutTicks = Math.Max(2, options.ElectionTimeoutMs / options.HeartbeatIntervalMs),
                SnapshotEveryEntries = options.SnapshotCount,
                // Snapshot files are written by a background task (WriteSnapshot) so a large one never stalls the
                // loop's heartbeats past an election timeout.
                PersistSnapshotsInBackground = true,
                MaxWalSyncsInFlight = options.WalSyncsInFlight,
                QuotaBackendBytes = options.QuotaBackendBytes,
                LeaderWaitMs = options.EffectiveLeaderWaitMs,
                MaxRequestsAwaitingLeader = options.MaxRequestsAwaitingLeader,
                AutoCompaction = options.AutoCompaction,
                RestoreImage = restoreImage,
                // Values in mapped files of the data directory, not on the GC heap (docs/mvcc.md, "Values in segments").
                ValueSegments = new FileValueSegmentSource(Path.Combine(directory.Path, FileValueSegmentSource.FolderName)),
            }, TimedStorageDirectory.Wrap(directory, statistics));
        }
        catch
        {
            directoryLock.Dispose();
            throw;
        }
        var host = new NodeHost(node, directory, directoryLock, clusterId, members, options, time, logger, statistics, peerSecurity);
        host.Transport.Start();
        host._loop = host.StartLoopThread();
        logger.LogInformation("member {Name} ({Id:x16}) of cluster {Cluster:x16} started; data in {DataDir}; applied index {Applied}",
            options.Name, node.Id, clusterId, options.DataDir, node.AppliedIndex);
        host._publisher = Task.Run(host.PublishSelfAsync);
        return host;
    }

    /// <summary>
    /// Peer TLS and the cluster secret from the flags (before the data directory is locked: a bad flag fails the start
    /// without touching it). Without either, the peer port is open to anyone who reaches it, which is logged.
    /// </summary>
    /// <exception cref="ArgumentException">A peer TLS flag or the secret file is wrong.</exception>
    private static PeerSecurity CreatePeerSecurity(ServerOptions options, ILogger logger)
    {
        var hosts = options.ListenPeerUrls.Concat(options.InitialAdvertisePeerUrls).Select(u => u.Host);
        var tls = TlsContext.Create("peer", options.PeerTls, Path.Combine(options.DataDir, "fixtures", "peer"), hosts, logger);
        if (tls is null && options.ListenPeerUrls.Concat(options.InitialAdvertisePeerUrls).Any(u => u.Scheme == Uri.UriSchemeHttps))
            throw new ArgumentException("https peer URLs need --peer-cert-file and --peer-key-file (or --peer-auto-tls)");
        var secret = options.PeerSecretFile is { } file ? PeerSecret.Load(file) : null;
        var tlsAuthenticates = tls is not null && !tls.SelfSigned && options.PeerTls.ClientCertAuth
            && options.ListenPeerUrls.All(u => u.Scheme == Uri.UriSchemeHttps);
        if (secret is null && !tlsAuthenticates)
            logger.LogWarning("peers are not authenticated (no --peer-client-cert-auth with a peer CA on https peer URLs, no --peer-secret-file): " +
                "any process that reaches {PeerUrls} can send Raft messages to this member; see docs/security.md",
                string.Join(", ", options.ListenPeerUrls));
        return new PeerSecurity(tls, secret);
    }

    /// <summary>Who this member is: its id, its cluster's id (0 until a joining member learned it), and how it began.</summary>
    private sealed record MemberIdentity(ulong MemberId, ulong ClusterId, bool Joined);

    private const string IdentityFile = "member";

    /// <summary>The backup a restored data directory starts from (written by <c>keel snapshot restore</c>).</summary>
    public const string RestoreFile = "restore.snapshot";

    /// <summary>
    /// This member's identity, remembered in the data directory (<c>member</c>) from its first start, so a restart keeps
    /// it whatever the flags say (etcd keeps it in the WAL's metadata). A first start with
    /// <c>--initial-cluster-state new</c> derives the member and cluster ids as etcd does from the peer URLs and the
    /// cluster token. A first start with <c>existing</c> is a member added by <c>member add</c>: its id is the one the
    /// cluster derived from its peer URLs, and the cluster id is learnt from the first peer that connects (the
    /// flags of a joining member list the current members, not the ones the cluster was bootstrapped with).
    /// </summary>
    private static MemberIdentity ResolveIdentity(ServerOptions options, IReadOnlyList<InitialMember> members, FileSystemDirectory directory)
    {
        var path = Path.Combine(directory.Path, IdentityFile);
        if (File.Exists(path))
        {
            var fields = new Dictionary<string, string>(StringComparer.Ordinal);
            var lines = File.ReadAllLines(path);
            var offset = 0;
            foreach (var line in lines)
            {
                var equals = line.IndexOf('=');
                if (equals <= 0) throw new IOException($"{path}: offset {offset}: '{line}' is not key=value; restore the file or start with an empty data directory");
                fields[line[..equals]] = line[(equals + 1)..];
                offset += System.Text.Encoding.UTF8.GetByteCount(line) + 1;
            }
            ulong Hex(string key) => fields.TryGetValue(key, out var text) && ulong.TryParse(text, System.Globalization.NumberStyles.HexNumber, null, out var value)
                ? value
                : throw new IOException($"{path}: '{key}' is missing or not 16 hex digits; restore the file or start with an empty data directory");
            var memberId = Hex("member-id");
            if (memberId == 0) throw new IOException($"{path}: member-id is 0; restore the file or start with an empty data directory");
            return new MemberIdentity(memberId, Hex("cluster-id"), fields.TryGetValue("origin", out var origin) && origin == "joined");
        }
        var joining = options.InitialClusterState == InitialClusterState.Existing;
        var self = members.First(m => m.Name == options.Name);
        var identity = joining
            ? new MemberIdentity(KeelNode.MemberIdFor(self.PeerUrls), 0, Joined: true)
            : new MemberIdentity(self.Id, ServerOptions.ClusterId(members.Select(m => m.Id)), Joined: false);
        WriteIdentity(directory, identity);
        return identity;
    }

    /// <summary>Writes the identity file durably (temporary file, fsync, rename).</summary>
    private static void WriteIdentity(FileSystemDirectory directory, MemberIdentity identity)
    {
        var path = Path.Combine(directory.Path, IdentityFile);
        var temporary = path + ".tmp";
        var text = $"member-id={identity.MemberId:x16}\ncluster-id={identity.ClusterId:x16}\norigin={(identity.Joined ? "joined" : "bootstrap")}\n";
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write))
        {
            file.Write(System.Text.Encoding.ASCII.GetBytes(text));
            file.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
        directory.SyncDirectory();
    }

    /// <summary>
    /// Records this member's name and client URLs in the replicated member table (etcd's publish after start), retrying
    /// until it lands so <c>member list</c> shows every member's client URLs.
    /// </summary>
    private async Task PublishSelfAsync()
    {
        var attributes = new MemberAttributes(MemberId, Options.Name, Options.AdvertiseClientUrls.Select(ServerOptions.UrlText).ToArray());
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var result = await RequestAsync((node, requestId) => node.PublishMember(requestId, attributes));
                if (!result.IsError) return;
                await Task.Delay(200, _stopping.Token);
            }
            catch (Exception exception) when (exception is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>Starts a request on the loop with a fresh request id and waits for its answer from the outbox.</summary>
    internal Task<KvResult> RequestAsync(Action<KeelNode, ulong> start)
    {
        if (!TryAdmitRequest()) return Task.FromResult(KvResult.Failed(0, KeelError.TooManyRequests));
        // Completed on the loop with its continuations run there (DriverHost.Answer): a small answer goes straight on to
        // the RPC's response instead of through a pool hand-off, which on 2 full cores was measured to cost about 6 % of
        // put throughput (docs/performance.md, "2026-12-05, 11:20–12:14"); a large one is completed from the pool instead.
        var waiting = new TaskCompletionSource<KvResult>();
        // The RPC's trace span (null unless tracing is on) marks when the loop took the request: queue time vs. the
        // rest (replication, apply, answer) until the span ends.
        var span = Activity.Current;
        Post(() =>
        {
            Interlocked.Decrement(ref _queuedRequests);
            var requestId = ++_nextRequestId;
            _waiting[requestId] = waiting;
            span?.AddEvent(new ActivityEvent("keel.loop.submitted"));
            start(Node, requestId);
        });
        return waiting.Task;
    }

    /// <summary>Counts a client request into the loop's queue, or refuses it when <see cref="ServerOptions.MaxQueuedRequests"/> are waiting.</summary>
    private bool TryAdmitRequest()
    {
        if (Interlocked.Increment(ref _queuedRequests) <= Options.MaxQueuedRequests) return true;
        Interlocked.Decrement(ref _queuedRequests);
        Interlocked.Increment(ref _requestsRefused);
        return false;
    }

    /// <summary>Client requests refused because the loop's queue was full.</summary>
    public long RequestsRefusedQueueFull => Interlocked.Read(ref _requestsRefused);

    /// <summary>Peer messages dropped because the loop's queue was full.</summary>
    public long PeerMessagesDropped => Interlocked.Read(ref _peerMessagesDropped);

    private void PostPeerMessage(Message message)
    {
        if (Interlocked.Increment(ref _queuedPeerMessages) > Options.MaxQueuedPeerMessages)
        {
            // Raft treats a dropped message as a lost packet and sends again; an unbounded backlog would only grow.
            Interlocked.Decrement(ref _queuedPeerMessages);
            Interlocked.Increment(ref _peerMessagesDropped);
            return;
        }
        // For the log line when the leader is lost: was it silent on the wire, or did its messages wait in our queue?
        if (message.From == _status.Leader) Volatile.Write(ref _leaderLastArrivedMs, MonotonicMs);
        try
        {
            Post(() =>
            {
                Interlocked.Decrement(ref _queuedPeerMessages);
                Node.Step(message);
            });
        }
        catch (ObjectDisposedException)
        {
            // Stopping.
        }
    }

    /// <summary>
    /// True when work is queued and no batch has finished for <see cref="ServerOptions.LoopStallMs"/>: the member cannot
    /// answer, so health says NOT_SERVING (a load balancer moves clients elsewhere) until the loop moves again.
    /// </summary>
    public bool IsLoopStalled =>
        Volatile.Read(ref _queuedItems) > 0 && MonotonicMs - Volatile.Read(ref _lastProgressMs) > Options.LoopStallMs;

    /// <summary>
    /// Proposes a write and waits for its answer (the response or a typed error). With no leader known it first waits
    /// for one, at most <see cref="ServerOptions.EffectiveLeaderWaitMs"/> and until shortly before
    /// <paramref name="deadline"/> (the gRPC call's; default: none).
    /// </summary>
    public Task<KvResult> WriteAsync(KvCommand command, string? idempotencyKey = null, DateTime deadline = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var leaderWaitUntilMs = LeaderWaitUntilMs(deadline);
        return Statistics.CountWrite(RequestAsync((node, requestId) => node.Submit(requestId, command, idempotencyKey, leaderWaitUntilMs)));
    }

    /// <summary>
    /// Reads linearizably (ReadIndex) or serializably (local) and waits for the answer; a linearizable read waits for a
    /// leader as <see cref="WriteAsync"/> does.
    /// </summary>
    public Task<KvResult> ReadAsync(RangeRequest request, bool linearizable, DateTime deadline = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!linearizable)
        {
            if (_readView is { } view) return Task.FromResult(ServeFromView(view, request));
            // The loop serves this one and captures a view for the reads after it.
            Volatile.Write(ref _readViewWanted, 1);
        }
        var leaderWaitUntilMs = LeaderWaitUntilMs(deadline);
        return RequestAsync((node, requestId) => node.Read(requestId, request, linearizable, leaderWaitUntilMs));
    }

    /// <summary>
    /// A serializable read from the loop's latest view, on the caller's thread: what the node's own serializable read
    /// answers (the view validates as the store does, with the same errors), without two thread hand-offs. The view is never older than an answer
    /// this member has given: the loop drops a view the turn's writes made stale before it releases that turn's answers.
    /// </summary>
    private KvResult ServeFromView(StoreReadView view, RangeRequest request)
    {
        Statistics.ReadServedFromView();
        try
        {
            return new KvResult { RequestId = 0, Range = view.Range(request) };
        }
        catch (MvccException refused)
        {
            return KvResult.Failed(0, KeelError.FromMvcc(refused));
        }
    }

    /// <summary>
    /// On the loop, before a turn's answers go out: drops the read view if the store changed, and captures a new one
    /// when a serializable read asked for it (capturing costs the next writes a copy of the index paths they change, so
    /// only readers pay for it).
    /// </summary>
    private void RefreshReadView()
    {
        var view = _readView;
        if (view is not null && !Node.Store.IsCurrent(view)) _readView = view = null;
        if (view is null && Interlocked.Exchange(ref _readViewWanted, 0) == 1) _readView = Node.Store.CaptureReadView();
    }

    /// <summary>
    /// The node's monotonic time at which a request that finds no leader gives up: <see cref="ServerOptions.LeaderWaitAnswerMarginMs"/>
    /// before the caller's deadline, so the caller hears "no leader" (a definite refusal) rather than its own timeout.
    /// </summary>
    private long LeaderWaitUntilMs(DateTime deadline)
    {
        if (deadline == default || deadline == DateTime.MaxValue) return KeelNode.NoCallerDeadline;
        var remainingMs = (long)(deadline.ToUniversalTime() - _time.GetUtcNow().UtcDateTime).TotalMilliseconds;
        return MonotonicMs + Math.Max(0, remainingMs - ServerOptions.LeaderWaitAnswerMarginMs);
    }

    /// <summary>
    /// A ReadIndex round with nothing to read: once it returns, this member has applied every write committed before
    /// the call, so local state (leases, members, times) can be read linearizably.
    /// </summary>
    /// <exception cref="Grpc.Core.RpcException">No leader, or the round timed out (etcd's texts).</exception>
    internal async Task BarrierAsync()
    {
        var result = await ReadAsync(new RangeRequest { Key = [0], Limit = 1, CountOnly = true }, linearizable: true);
        Errors.ThrowIfFailed(result);
    }

    /// <summary>Runs <paramref name="work"/> on the loop (the only thread that may touch the node) and returns its result.</summary>
    public Task<T> InvokeAsync<T>(Func<KeelNode, T> work)
    {
        if (!TryAdmitRequest()) return Task.FromException<T>(Errors.ToRpc(KeelError.TooManyRequests));
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            Interlocked.Decrement(ref _queuedRequests);
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
        node.Members.Select(ToProto).ToArray());

    /// <summary>One member in etcd's wire form.</summary>
    internal static Keel.Protocol.Etcd.Etcdserverpb.Member ToProto(MemberInfo member)
    {
        var proto = new Keel.Protocol.Etcd.Etcdserverpb.Member { ID = member.Id, Name = member.Name, IsLearner = member.IsLearner };
        proto.PeerURLs.AddRange(member.PeerUrls);
        proto.ClientURLs.AddRange(member.ClientUrls);
        return proto;
    }

    /// <summary>Queues a work item for the loop.</summary>
    internal void Post(Action work)
    {
        Interlocked.Increment(ref _queuedItems);
        if (_work.TryWrite(work)) return;
        Interlocked.Decrement(ref _queuedItems);
        throw new ObjectDisposedException(nameof(NodeHost), "the node is stopping");
    }

    /// <summary>Milliseconds on the monotonic clock since this host started.</summary>
    internal long MonotonicMs => (long)_time.GetElapsedTime(_startTimestamp).TotalMilliseconds;

    /// <summary>
    /// Before a graceful stop (SIGTERM, Ctrl-C): a leader hands leadership to its most caught-up voter and waits (at most
    /// two election timeouts) until that voter leads, as etcd does, so a rolling restart costs no election timeout and
    /// fails no write. Returns the new leader, or 0 when this member was not the leader or the hand-off did not finish.
    /// </summary>
    public async Task<ulong> HandOffLeadershipAsync()
    {
        ulong target;
        try
        {
            target = await InvokeAsync(node =>
            {
                var voter = node.MostCaughtUpVoter();
                if (voter != 0) node.TransferLeadership(voter);
                return voter;
            });
        }
        catch (Exception exception) when (exception is ObjectDisposedException or Grpc.Core.RpcException)
        {
            return 0;
        }
        if (target == 0) return 0;
        var deadline = MonotonicMs + 2L * Options.ElectionTimeoutMs;
        while (MonotonicMs < deadline)
        {
            if (_status.Leader == target)
            {
                _logger.LogInformation("stopping: leadership handed to {Target:x16}", target);
                return target;
            }
            await Task.Delay(10);
        }
        _logger.LogWarning("stopping: leadership hand-off to {Target:x16} did not finish within {Ms} ms", target, 2 * Options.ElectionTimeoutMs);
        return 0;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        _work.Complete();
        try
        {
            if (_loop is not null) await _loop.WaitAsync(TimeSpan.FromSeconds(10));
            _walSync?.Stop();
            if (_publisher is not null) await _publisher.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception exception) when (exception is OperationCanceledException or TimeoutException)
        {
        }
        await Transport.DisposeAsync();
        Watches.CancelAll("server is shutting down");
        foreach (var waiting in _waiting.Values) waiting.TrySetResult(KvResult.Failed(0, KeelError.RequestTimedOut));
        _directoryLock.Dispose();
        _stopping.Dispose();
        if (_loop is null || _loop.IsCompleted) _work.Dispose();
    }

    /// <summary>The host's side of <see cref="NodeDriver"/>: real clocks, the peer transport, the waiting RPCs, files.</summary>
    private sealed class DriverHost(NodeHost host) : INodeDriverHost
    {
        public long MonotonicMs => host.MonotonicMs;

        public long WallClockMs => host._time.GetUtcNow().ToUnixTimeMilliseconds();

        public void Send(Message message) => host.Transport.Send(message);

        public void Answer(KvResult result)
        {
            if (!host._waiting.Remove(result.RequestId, out var waiting)) return;
            // The waiting RPC's continuation (map to protobuf, write the response) runs here, on the loop, when that is
            // cheap; an answer carrying many or large key-values is handed to the pool so it cannot hold up the loop.
            if (InlineAnswers.CheapToFinishOnLoop(result)) waiting.TrySetResult(result);
            else ThreadPool.UnsafeQueueUserWorkItem(static s => s.Waiting.TrySetResult(s.Result), (Waiting: waiting, Result: result), preferLocal: false);
        }

        public void WriteSnapshotInBackground(SnapshotToPersist snapshot) => host.WriteSnapshot(snapshot);

        public bool SyncsLogInBackground => host.Options.WalSyncPipelined;

        public void SyncLogInBackground(WalSyncTicket ticket) => host.SyncLog(ticket);

        public void OnTicked(long monotonicMs) => host.OnTicked(monotonicMs);

        public void BeforeAnswers()
        {
            host._auth = host.Node.Auth;
            host._gossipKeys = host.Node.GossipKeys;
            host.RefreshReadView();
        }

        public void AfterTurn() => host.AfterTurn();

        public void Removed() => host.OnRemovedFromCluster();
    }

    private void OnTicked(long monotonicMs)
    {
        if (monotonicMs - _lastProgressNotifyMs >= Options.WatchProgressNotifyIntervalMs)
        {
            _lastProgressNotifyMs = monotonicMs;
            Watches.NotifyProgress();
        }
    }

    /// <summary>
    /// Encodes a captured state snapshot and writes it durably, both off the loop (tmp file, fsync, rename, directory
    /// fsync: <see cref="SnapshotStore"/>), then tells the node on the loop, which only then records it as Raft's
    /// snapshot and in the WAL and compacts the log. The loop only captured the state (reference copies).
    /// </summary>
    private void WriteSnapshot(SnapshotToPersist snapshot)
    {
        _ = Task.Run(() =>
        {
            var durable = false;
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                // Streamed into its file a chunk at a time as it is encoded (no buffer of the image's size), and Raft
                // reads the file when a follower needs the image.
                var sizeBytes = ImageSize.CheckFitsOneArray(snapshot.Image.SizeBytes, "the node's snapshot image");
                new SnapshotStore(Directory).Save(snapshot.Index, snapshot.Term, sizeBytes, snapshot.Image.EncodeTo, snapshot.StreamedSnapshotIndexes);
                durable = true;
                _logger.LogInformation("snapshot at index {Index} ({Bytes:N0} bytes) encoded and written in {Ms:F0} ms, off the loop",
                    snapshot.Index, sizeBytes, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                _logger.LogError(exception, "snapshot at index {Index} could not be written; the log is kept and a new snapshot is tried later", snapshot.Index);
            }
            catch (ImageTooLargeException exception)
            {
                _logger.LogCritical(exception, "snapshot at index {Index} cannot be encoded: {Message}; the log is kept and grows until the state shrinks", snapshot.Index, exception.Message);
            }
            catch (Exception exception)
            {
                // Anything else means the captured image broke an invariant (or the encoder has a bug): going on would leave
                // the member unable to ever snapshot again (one snapshot in flight at a time) and its log growing without
                // bound, so it stops loudly instead.
                FailStop("snapshot writer", exception);
                return;
            }
            try
            {
                Post(() => _driver.SnapshotWritten(snapshot.Index, snapshot.Term, durable));
            }
            catch (ObjectDisposedException)
            {
                // Stopping: the WAL still holds every entry after the last durable snapshot.
            }
        });
    }

    /// <summary>Hands a WAL write to the sync thread (started on first use); the loop hears back through a work item.</summary>
    private void SyncLog(WalSyncTicket ticket)
    {
        _walSync ??= new WalSyncThread(OnLogSynced);
        _walSync.Enqueue(ticket);
    }

    // On the sync thread.
    private void OnLogSynced(List<WalSyncTicket> tickets, Exception? error)
    {
        var synced = tickets.ToArray();
        try
        {
            Post(() =>
            {
                foreach (var ticket in synced) _driver.LogSynced(ticket, error);
            });
        }
        catch (ObjectDisposedException)
        {
            // Stopping: nothing waits for these writes any more, and restart recovers what reached the disk.
        }
    }

    private WalSyncThread? _walSync;

    /// <summary>
    /// Points the transport at the replicated member table (members added, moved or removed). A peer goes only once
    /// the member table and the Raft configuration both dropped it (<see cref="KeelNode.IsPeer"/>): a member removed by
    /// a joint change still votes in the outgoing half until the joint configuration is left.
    /// </summary>
    private void SyncPeers()
    {
        var leader = Node.Raft.Leader;
        if (Node.MemberTableVersion == _knownMemberTableVersion && leader == _knownLeader) return;
        _knownLeader = leader;
        // A member must always be able to answer its leader (KeelNode.IsPeer counts it). A joiner that restored a
        // snapshot older than the leader's own admission has no table entry, so no address, for it: it reaches the
        // leader where its flags say the leader is (the flags `member add` printed list every member of the time).
        if (leader != 0 && leader != MemberId && !Transport.PeerIds.Contains(leader) && _flagPeerUrls.TryGetValue(leader, out var leaderUrls))
        {
            _logger.LogInformation("leader {Leader:x16} is not in this member's table yet; reaching it at {Urls} from --initial-cluster",
                leader, string.Join(",", leaderUrls.Select(u => u.ToString())));
            Transport.SetPeer(leader, leaderUrls);
        }
        if (Node.MemberTableVersion == _knownMemberTableVersion) return;
        _knownMemberTableVersion = Node.MemberTableVersion;
        var membership = Node.Raft.Membership;
        if (_knownMembership is not null && !membership.Equals(_knownMembership))
            _logger.LogInformation("configuration is now {Configuration} (applied index {Applied}, commit index {Committed})",
                membership, Node.AppliedIndex, Node.Raft.Log.Committed);
        _knownMembership = membership;
        foreach (var member in Node.Members)
            if (member.PeerUrls.Count > 0) Transport.SetPeer(member.Id, member.PeerUrls.Select(u => new Uri(u)).ToArray());
        // Every other peer goes, including ids derived from a joining member's flags that the cluster knows under other
        // ids. Its connection still sends what this turn queued for it (the commit of its own removal, say).
        foreach (var gone in Transport.PeerIds.Where(id => !Node.IsPeer(id)))
        {
            _logger.LogInformation("peer {Peer:x16} is no longer a member or in the configuration {Configuration}; its connection closes", gone, membership);
            Transport.RemovePeer(gone);
        }
        // A removed member cut off from the commit of its removal learns it when it next reaches us.
        Transport.SetRemovedMembers(Node.RemovedMembersToNotify());
    }

    private long _knownMemberTableVersion = -1;
    private ulong _knownLeader;
    private Keel.Quorum.Membership? _knownMembership;

    /// <summary>The name of the loop's thread (in dumps, profiles and <c>ps -T</c>).</summary>
    internal const string LoopThreadName = "keel-node-loop";

    // The loop owns a thread: it blocks on fsync by design, and a loop borrowing pool threads would starve the pool
    // that the peer transport, the ticker and gRPC run on (on 2 cores, heartbeats then stalled for half a second at a
    // time, until the pool injected a thread, and followers called elections).
    private Task StartLoopThread()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                RunLoop();
            }
            finally
            {
                done.TrySetResult();
            }
        })
        {
            IsBackground = true,
            Name = LoopThreadName,
        };
        thread.Start();
        return done.Task;
    }

    private void RunLoop()
    {
        try
        {
            RunLoopCore();
        }
        catch (Exception exception)
        {
            // Anything that escapes the loop (a failed fsync, an apply bug, a broken invariant) leaves the node in a
            // state nobody can vouch for: stop the process rather than keep accepting requests nobody will answer.
            FailStop("node loop", exception);
        }
    }

    /// <summary>
    /// Ends the process at once with one clear line on stderr and in the log (fail-stop, as etcd's panics and
    /// TigerBeetle's assertions do): a member that cannot go on must never linger as a zombie that accepts requests.
    /// The exit code is non-zero (134: abort).
    /// </summary>
    internal void FailStop(string where, Exception exception)
    {
        var what = exception is InvariantViolationException ? "safety invariant violated" : $"unexpected {exception.GetType().Name}";
        var line = $"keel: FATAL: member {Options.Name} ({MemberId:x16}) stops: {what} in the {where}: {exception.Message} " +
            $"(at {exception.TargetSite?.DeclaringType?.Name}.{exception.TargetSite?.Name}); the data directory {Options.DataDir} " +
            "holds every acknowledged write: fix the cause and restart";
        try
        {
            _logger.LogCritical(exception, "{Line}", line);
            Console.Error.WriteLine(line);
            Console.Error.Flush();
        }
        finally
        {
            FatalHandler(line, exception);
        }
    }

    /// <summary>What <see cref="FailStop"/> finally does: <see cref="Environment.FailFast(string, Exception)"/>.</summary>
    internal static Action<string, Exception> FatalHandler { get; set; } = (line, exception) => Environment.FailFast(line, exception);

    private void RunLoopCore()
    {
        var reader = _work;
        _driver.Start();
        // The loop ticks itself (NodeDriver.NextTickMs) from its own clock readings: no timer thread and no pool thread
        // wakes it for that.
        var reportAt = System.Diagnostics.Stopwatch.GetTimestamp();
        long busyTicks = 0, batches = 0, items = 0;
        NextWorkItem next = (out Action work) =>
        {
            if (!reader.TryRead(out work)) return false;
            Interlocked.Decrement(ref _queuedItems);
            return true;
        };
        while (true)
        {
            var untilTickMs = _driver.NextTickMs - MonotonicMs;
            if (untilTickMs > 0)
            {
                if (!reader.WaitToRead((int)Math.Min(untilTickMs, TickEveryMs))) break;
            }
            else if (reader.IsDrained)
            {
                // A loop that is always behind (batches longer than a tick) never waits: it must still see the end.
                break;
            }
            var batchStart = System.Diagnostics.Stopwatch.GetTimestamp();
            // No catch here: every work item validates what it was given, so an exception is a bug or a failed disk, and
            // RunLoop stops the member.
            var ran = _driver.RunTurn(next);
            var batchEnd = System.Diagnostics.Stopwatch.GetTimestamp();
            Volatile.Write(ref _lastProgressMs, MonotonicMs);
            ReportNodeConditions();
            var batchMs = (batchEnd - batchStart) * 1000 / System.Diagnostics.Stopwatch.Frequency;
            if (batchMs >= SlowBatchMs)
            {
                // A batch this long delays heartbeats: past the election timeout the followers elect someone else.
                _logger.LogWarning("node loop: one batch of {Items} work items took {Ms} ms (GC pauses so far {PauseMs:F0} ms)",
                    ran, batchMs, GC.GetTotalPauseDuration().TotalMilliseconds);
            }
            Statistics.RecordBatch(ran, batchEnd - batchStart);
            busyTicks += batchEnd - batchStart;
            batches++;
            items += ran;
            if (batchEnd - reportAt >= System.Diagnostics.Stopwatch.Frequency * LoopReportEverySeconds)
            {
                // Loop utilization is the first thing to look at when latency grows: near 100 % the node loop, not the
                // disk or the network, is the bottleneck.
                if (items > batches * 2)
                {
                    _logger.LogInformation("node loop: {Batches} batches, {Items} work items (mean batch {Mean:F1}), busy {Busy:P0} of the last {Seconds} s",
                        batches, items, (double)items / batches, (double)busyTicks / (batchEnd - reportAt), LoopReportEverySeconds);
                }
                reportAt = batchEnd;
                busyTicks = batches = items = 0;
            }
        }
    }

    /// <summary>Logs, once per change, what the node refused or suffered: skipped invalid entries, a full disk.</summary>
    private void ReportNodeConditions()
    {
        if (Node.InvalidEntriesSkipped != _invalidEntriesReported)
        {
            _invalidEntriesReported = Node.InvalidEntriesSkipped;
            _logger.LogWarning("skipped a committed log entry that is not a valid command ({Count} so far): {Entry}",
                _invalidEntriesReported, Node.LastInvalidEntry);
        }
        if (Node.IsDiskFull != _diskFullReported)
        {
            _diskFullReported = Node.IsDiskFull;
            if (_diskFullReported)
                _logger.LogError("NOSPACE: the device holding {DataDir} is full; writes are refused with \"etcdserver: mvcc: database space exceeded\", serializable reads are served, and the log write is retried every 100 ms", Options.DataDir);
            else
                _logger.LogInformation("NOSPACE cleared: the device has room again; this member writes its log and catches up");
        }
    }

    /// <summary>After a turn's messages and answers went out: the leader-change log, the published status, the watchers.</summary>
    private void AfterTurn()
    {
        // After the turn's messages went out: a peer dropped by this turn still gets what the turn sent it.
        SyncPeers();
        if (Node.Raft.Leader != _status.Leader && Node.Raft.Leader != 0) Statistics.LeaderChanged();
        if (Node.Raft.Leader != _status.Leader)
        {
            if (Node.Raft.Leader == 0 && _status.Leader == MemberId && Node.Raft.Term == _status.Term)
                _logger.LogWarning("stopped leading (term {Term}): {Reason}; applied index {Applied}, commit index {Committed}",
                    Node.Raft.Term, Node.Raft.LastStepDownReason ?? "unknown", Node.AppliedIndex, Node.Raft.Log.Committed);
            else if (Node.Raft.Leader == 0 && _status.Leader != 0 && _status.Leader != MemberId)
                _logger.LogWarning("lost leader {Leader:x16} (term {Term}, now {Role}): its last message arrived {SilentMs} ms ago, {Queued} work items queued",
                    _status.Leader, Node.Raft.Term, Node.Raft.Role, MonotonicMs - Volatile.Read(ref _leaderLastArrivedMs), QueuedItems);
            else
                _logger.LogInformation("leader is now {Leader:x16} (term {Term}){Self}", Node.Raft.Leader, Node.Raft.Term, Node.IsLeader ? ", this member" : "");
        }
        _status = new HostStatus(Node.Raft.Leader, Node.Raft.Term, Node.Store.CurrentRevision, Node.Store.CompactRevision,
            Node.AppliedIndex, Node.Raft.Log.Committed)
        {
            Alarms = Node.HasAlarms ? Node.Alarms : [],
            StoreSizeBytes = Node.Store.SizeBytes,
            KeyCount = Node.Store.IndexedKeyCount,
            IsLearner = Node.Raft.Membership.IsLearner(Node.Id),
        };
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
public sealed record HostStatus(ulong Leader, ulong Term, long Revision, long CompactRevision, ulong AppliedIndex, ulong CommitIndex)
{
    /// <summary>The active alarms (replicated, plus this member's full disk).</summary>
    public IReadOnlyList<AlarmMember> Alarms { get; init; } = [];

    /// <summary>The store's size (<see cref="Keel.Mvcc.MvccStore.SizeBytes"/>).</summary>
    public long StoreSizeBytes { get; init; }

    /// <summary>Keys in the store's index (live and with history).</summary>
    public int KeyCount { get; init; }

    /// <summary>True when this member is a learner.</summary>
    public bool IsLearner { get; init; }
}
