using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Channels;
using Keel.Core;

namespace Keel.Gossip.Hosting;

/// <summary>
/// The network shell of a gossip member: drives one I/O-free <see cref="SwimMember"/> over a UDP socket, every packet
/// sealed and opened by a <see cref="GossipSecureChannel"/> (AES-256-GCM keyring, replay window). One loop owns the core, the
/// channel and the outbox, so the core needs no locks: the socket reader and the public methods only post inputs to the
/// loop's queue. Time comes from a <see cref="TimeProvider"/>. Member ids are derived from addresses
/// (<see cref="GossipAddress"/>), so joining needs only seed addresses. Disposing without <see cref="LeaveAsync"/>
/// stops the member the way a crash does: peers suspect it, then declare it dead.
/// </summary>
/// <remarks>
/// Everything travels by UDP, anti-entropy included (memberlist uses TCP for push-pull): a message larger than one
/// datagram (65,507 bytes: a full-state join reply of more than about 2,500 members) is dropped and counted in
/// <see cref="GossipAgentCounters.DroppedOversize"/>.
/// </remarks>
public sealed class GossipAgent : IAsyncDisposable
{
    private const int MaxDatagramBytes = 65_507;

    private readonly GossipAgentOptions _options;
    private readonly Socket _socket;
    private readonly TimeProvider _time;
    private readonly long _startTimestamp;
    private readonly SwimMember _member;
    private readonly GossipSecureChannel _channel;
    // Bounded: a datagram flood fills the queue and further datagrams are dropped and counted, memory stays flat.
    private readonly Channel<Input> _inputs = Channel.CreateBounded<Input>(new BoundedChannelOptions(4096) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly List<OutboundMessage> _outbox = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _joined = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(Func<bool> Condition, TaskCompletionSource Done)> _waiters = [];
    private readonly Lock _waitersLock = new();
    private Task _loop = Task.CompletedTask;
    private Task _receiver = Task.CompletedTask;
    private volatile IReadOnlyList<AgentMember> _members = [];
    private volatile GossipAgentCounters _counters = new(0, 0, 0, 0, 0, 0, 0, 0, 0);
    private long _lastPublishMs = long.MinValue;
    private long _nextJoinMs;
    private int _nextSeed;
    private long _leaveDeadlineMs = -1;
    private TaskCompletionSource? _leaveDone;
    private int _disposed;
    private long _droppedOverload;
    private volatile Exception? _fault;

    private readonly record struct Input(byte[]? Datagram, Action? Command, EndPoint? From = null);

    private GossipAgent(GossipAgentOptions options, Socket socket)
    {
        _options = options;
        _socket = socket;
        _time = options.TimeProvider;
        _startTimestamp = _time.GetTimestamp();
        LocalEndpoint = (IPEndPoint)socket.LocalEndPoint!;
        Id = GossipAddress.IdOf(LocalEndpoint);
        var wallMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var seed = options.RandomSeed != 0 ? options.RandomSeed : Id ^ (ulong)wallMs * 0x9E3779B97F4A7C15UL;
        _member = new SwimMember(Id, options.Gossip, new DeterministicRandom(seed), NowMs(), options.Tags);
        // Wall-clock microseconds: a restarted agent's packets number above everything it sent before (replay window).
        _channel = new GossipSecureChannel(Id, new GossipKeyring(options.Keys), (ulong)Math.Max(1, wallMs) * 1000, RandomNumberGenerator.Fill);
    }

    /// <summary>This member's id (derived from <see cref="LocalEndpoint"/>).</summary>
    public ulong Id { get; }

    /// <summary>The address the agent listens on.</summary>
    public IPEndPoint LocalEndpoint { get; }

    /// <summary>Every known member (self included) with state, zone, incarnation and phi; refreshed by the loop at least every <see cref="GossipAgentOptions.SnapshotRefreshMs"/>.</summary>
    public IReadOnlyList<AgentMember> Members => _members;

    /// <summary>Traffic and rejection counters.</summary>
    public GossipAgentCounters Counters => _counters with { DroppedOverload = Interlocked.Read(ref _droppedOverload) };

    /// <summary>The exception that stopped the loop (a bug: an invariant of the core failed), or null while healthy.</summary>
    public Exception? Fault => _fault;

    /// <summary>
    /// Binds the socket, starts the loop and, when seeds are given, joins through them (a full-state pull from one seed,
    /// retried round robin) and returns once a seed answered.
    /// </summary>
    /// <exception cref="GossipJoinException">No seed answered within <see cref="GossipAgentOptions.JoinTimeoutMs"/>.</exception>
    /// <exception cref="SocketException">The endpoint could not be bound.</exception>
    public static async Task<GossipAgent> StartAsync(GossipAgentOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        GossipAgent agent;
        try
        {
            socket.Bind(options.BindEndpoint);
            agent = new GossipAgent(options, socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        agent._receiver = Task.Run(agent.ReceiveLoopAsync, CancellationToken.None);
        agent._loop = Task.Run(agent.RunLoopAsync, CancellationToken.None);
        if (options.Seeds.Count == 0) return agent;
        try
        {
            await agent._joined.Task.WaitAsync(TimeSpan.FromMilliseconds(options.JoinTimeoutMs), agent._time, cancellationToken).ConfigureAwait(false);
            return agent;
        }
        catch (TimeoutException)
        {
            await agent.DisposeAsync().ConfigureAwait(false);
            throw new GossipJoinException($"no seed of [{string.Join(", ", options.Seeds)}] answered within {options.JoinTimeoutMs} ms");
        }
        catch
        {
            await agent.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Changes this member's tags (raises its incarnation; gossiped like any update).</summary>
    public Task UpdateTagsAsync(MemberTags tags) => InvokeAsync(() => _member.UpdateTags(tags, NowMs()));

    /// <summary>
    /// Runs <paramref name="change"/> on the keyring inside the loop, e.g. the three steps of a rotation without
    /// downtime: install everywhere, use as primary everywhere, remove the old key everywhere.
    /// </summary>
    public Task ChangeKeyringAsync(Action<GossipKeyring> change) => InvokeAsync(() => change(_channel.Keyring));

    /// <summary>Makes the keyring exactly <paramref name="keys"/>, the first the primary (a keyring decided elsewhere: the replicated log, a reloaded file).</summary>
    public Task SetKeysAsync(IReadOnlyList<byte[]> keys) => InvokeAsync(() => _channel.Keyring.ReplaceAll(keys));

    /// <summary>Copies of the keys in use, the primary first (read on the loop).</summary>
    public async Task<IReadOnlyList<byte[]>> KeysAsync()
    {
        IReadOnlyList<byte[]> keys = [];
        await InvokeAsync(() => keys = _channel.Keyring.Keys).ConfigureAwait(false);
        return keys;
    }

    /// <summary>Completes when the published member list satisfies <paramref name="predicate"/>.</summary>
    public async Task<IReadOnlyList<AgentMember>> WaitForMembersAsync(Func<IReadOnlyList<AgentMember>, bool> predicate, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<AgentMember> seen = [];
        await WaitUntilAsync(() => predicate(seen = _members), cancellationToken).ConfigureAwait(false);
        return seen;
    }

    /// <summary>Completes when the counters satisfy <paramref name="predicate"/> (checked whenever the loop publishes).</summary>
    public Task WaitForCountersAsync(Func<GossipAgentCounters, bool> predicate, CancellationToken cancellationToken = default) =>
        WaitUntilAsync(() => predicate(_counters), cancellationToken);

    private Task WaitUntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        if (condition()) return Task.CompletedTask;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waitersLock) _waiters.Add((condition, done));
        if (condition()) done.TrySetResult(); // published between the first check and the registration
        cancellationToken.Register(() => done.TrySetCanceled(cancellationToken));
        return done.Task;
    }

    /// <summary>
    /// Leaves gracefully: gossips a "left" claim until it has been retransmitted enough (or
    /// <see cref="GossipAgentOptions.LeaveTimeoutMs"/> passed), then stops. Peers mark the member left, not dead.
    /// </summary>
    public async Task LeaveAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await InvokeAsync(() =>
        {
            _member.Leave(NowMs());
            _leaveDeadlineMs = NowMs() + _options.LeaveTimeoutMs;
            _leaveDone = done;
        }).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the loop and closes the socket without leaving: to peers this looks like a crash.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        _inputs.Writer.TryComplete();
        _socket.Dispose();
        try { await Task.WhenAll(_loop, _receiver).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        lock (_waitersLock)
        {
            foreach (var (_, done) in _waiters) done.TrySetCanceled();
            _waiters.Clear();
        }
        _leaveDone?.TrySetResult();
        _stop.Dispose();
    }

    private async Task InvokeAsync(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            await _inputs.Writer.WriteAsync(new Input(null, () =>
            {
                try { action(); done.TrySetResult(); }
                catch (Exception e) { done.TrySetException(e); }
            })).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(GossipAgent));
        }
        await done.Task.ConfigureAwait(false);
    }

    private long NowMs() => (long)_time.GetElapsedTime(_startTimestamp).TotalMilliseconds;

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[MaxDatagramBytes + 1];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var result = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token).ConfigureAwait(false);
                if (!_inputs.Writer.TryWrite(new Input(buffer.AsSpan(0, result.ReceivedBytes).ToArray(), null, result.RemoteEndPoint)))
                    Interlocked.Increment(ref _droppedOverload);
            }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) when (!_stop.IsCancellationRequested) { } // e.g. ICMP port unreachable surfaced on receive
            catch (SocketException) { return; }
        }
    }

    private async Task RunLoopAsync()
    {
        try
        {
            await LoopAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _fault = e;
            lock (_waitersLock)
            {
                foreach (var (_, done) in _waiters) done.TrySetException(e);
                _waiters.Clear();
            }
            _leaveDone?.TrySetException(e);
        }
    }

    private async Task LoopAsync()
    {
        var reader = _inputs.Reader;
        while (!_stop.IsCancellationRequested)
        {
            var waitMs = Math.Min(_member.NextWakeMs - NowMs(), _options.SnapshotRefreshMs);
            if (_options.Seeds.Count > 0 && !_joined.Task.IsCompleted) waitMs = Math.Min(waitMs, _nextJoinMs - NowMs());
            if (waitMs > 0 && !reader.TryPeek(out _))
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(waitMs), _time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _stop.Token);
                // The timeout is the loop's normal wake-up (each protocol period), so it must not cost an exception each time.
                var wait = reader.WaitToReadAsync(linked.Token).AsTask();
                await ((Task)wait).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (_stop.IsCancellationRequested) return;
                if (wait.IsFaulted) await wait.ConfigureAwait(false); // the input channel failed: surface it as the loop's fault
                if (wait.IsCompletedSuccessfully && !wait.Result) return; // inputs completed: the agent is stopping
            }
            var changed = false;
            var handled = 0;
            while (handled++ < 256 && reader.TryRead(out var input))
            {
                if (input.Datagram is { } datagram) changed |= !OnDatagram(datagram, input.From);
                else input.Command!();
                changed |= FlushOutbox();
            }
            var nowMs = NowMs();
            TryJoin(nowMs);
            _member.Tick(nowMs, _outbox);
            changed |= FlushOutbox();
            if (_leaveDone is { } leaving && (_member.Broadcasts.Count == 0 || nowMs >= _leaveDeadlineMs))
            {
                leaving.TrySetResult();
                return;
            }
            if (changed || nowMs - _lastPublishMs >= _options.SnapshotRefreshMs) Publish(nowMs);
        }
    }

    // Returns false when the datagram was rejected (the counters changed: waiters are re-checked).
    private bool OnDatagram(byte[] datagram, EndPoint? from)
    {
        var outcome = _channel.Open(datagram, out var sender, out var message);
        _counters = _counters with
        {
            PacketsReceived = _counters.PacketsReceived + 1,
            Accepted = _channel.Accepted,
            DroppedForged = _channel.DroppedForged,
            DroppedReplayed = _channel.DroppedReplayed,
            DroppedMalformed = _channel.DroppedMalformed,
            DroppedTruncated = _channel.DroppedTruncated,
            DroppedPlaintext = _channel.DroppedPlaintext,
        };
        if (outcome != OpenOutcome.Accepted)
        {
            _options.OnPacketDropped?.Invoke(outcome, from as IPEndPoint ?? new IPEndPoint(IPAddress.Any, 0));
            return false;
        }
        if (!GossipAddress.IsAddressId(sender)) return true; // authentic but not addressable: nothing to answer
        _member.Receive(sender, message!, NowMs(), _outbox);
        if (!_joined.Task.IsCompleted && _member.LiveCount > 1) _joined.TrySetResult(); // a seed answered with its view
        return true;
    }

    private void TryJoin(long nowMs)
    {
        if (_options.Seeds.Count == 0 || _joined.Task.IsCompleted || nowMs < _nextJoinMs) return;
        _nextJoinMs = nowMs + _options.JoinRetryMs;
        var seed = _options.Seeds[_nextSeed++ % _options.Seeds.Count];
        _member.Join(GossipAddress.IdOf(seed), nowMs, _outbox);
    }

    // Seals and sends the outbox; returns true when membership events were produced (the snapshot is then republished).
    private bool FlushOutbox()
    {
        foreach (var m in _outbox)
        {
            if (!GossipAddress.IsAddressId(m.To)) continue;
            var packet = _channel.Seal(m.Message);
            if (packet.Length > MaxDatagramBytes)
            {
                _counters = _counters with { DroppedOversize = _counters.DroppedOversize + 1 };
                continue;
            }
            try
            {
                _socket.SendTo(packet, SocketFlags.None, GossipAddress.EndpointOf(m.To));
                _counters = _counters with { PacketsSent = _counters.PacketsSent + 1, BytesSent = _counters.BytesSent + packet.Length };
            }
            catch (SocketException)
            {
                _counters = _counters with { SendErrors = _counters.SendErrors + 1 };
            }
            catch (ObjectDisposedException)
            {
                break;
            }
        }
        _outbox.Clear();
        return _member.DrainEvents().Count > 0;
    }

    private void Publish(long nowMs)
    {
        _lastPublishMs = nowMs;
        var snapshot = _member.Members(nowMs).ConvertAll(m => new AgentMember(
            m.Id, GossipAddress.IsAddressId(m.Id) ? GossipAddress.EndpointOf(m.Id) : new IPEndPoint(IPAddress.None, 0),
            m.Status, m.Health, m.Incarnation, m.Phi, m.Tags));
        _members = snapshot;
        List<TaskCompletionSource>? satisfied = null;
        lock (_waitersLock)
        {
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (!_waiters[i].Condition()) continue;
                (satisfied ??= []).Add(_waiters[i].Done);
                _waiters.RemoveAt(i);
            }
        }
        if (satisfied is not null) foreach (var done in satisfied) done.TrySetResult();
    }
}
