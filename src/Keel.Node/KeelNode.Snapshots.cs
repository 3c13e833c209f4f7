using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Keel.Core;
using Keel.Core.Encoding;
using Keel.Idempotency;
using Keel.Leases;
using Keel.Mvcc;
using Keel.Quorum;
using Keel.Raft;

namespace Keel.Node;

// Snapshots and log compaction (etcd server.go triggerSnapshot/snapshot, --snapshot-count): every
// SnapshotEveryEntries applied entries the whole replicated state is written through the WAL's snapshot support and
// Raft's log is compacted, keeping RaftOptions.TrailingEntries for slow followers; a follower further behind gets
// InstallSnapshot and restores from it; Open restores from the newest snapshot and replays the WAL after it.
public sealed partial class KeelNode
{
    private const uint SnapshotMagic = 0x444F4E4B; // "KNOD"
    private const byte SnapshotVersion = 5;
    private const byte SnapshotVersionWithoutRemovedMembers = 4;
    private const byte SnapshotVersionWithoutKeyring = 3;
    private const byte SnapshotVersionWithoutAuth = 2;
    private const byte SnapshotVersionWithoutAlarms = 1;
    private ulong _snapshotIndex;
    private long _bytesAppliedSinceSnapshot;
    private ulong _snapshotInFlight;
    private (NodeImage Image, Membership Membership)? _snapshotInFlightImage;

    /// <summary>The index of the newest snapshot this node took or restored (0: none yet).</summary>
    public ulong SnapshotIndex => _snapshotIndex;

    /// <summary>How many snapshots this node installed from a leader since it opened.</summary>
    public int SnapshotsInstalled { get; private set; }

    /// <summary>
    /// Bytes of Raft's snapshot image held in memory: 0 once a snapshot is durable, since Raft then reads the image from
    /// its file when a follower needs it (only the small bootstrap image, or one not yet written, is held).
    /// </summary>
    public long SnapshotImageBytesInMemory => _log.Storage.Snapshot is { Stored: null } inMemory ? inMemory.Data.Length : 0;

    /// <summary>Bytes of entry payloads Raft's log holds in memory (bounded by <see cref="KeelNodeOptions.RaftLogMemoryBytes"/> once applied).</summary>
    public long RaftLogBytesInMemory => _log.Storage.PayloadBytesInMemory;

    /// <summary>Entries read back from the WAL for lagging followers since this node opened.</summary>
    public long EntriesReadBack => _log.EntriesReadBack;

    /// <summary>The first index still in Raft's stored log (entries before it were compacted into a snapshot).</summary>
    public ulong FirstLogIndex => _log.Storage.FirstIndex;

    private void MaybeSnapshot()
    {
        var every = (ulong)_options.SnapshotEveryEntries;
        if (_options.PersistSnapshotsInBackground)
        {
            // Staggered by rank among the voters (0, 1/n, 2/n of the interval): encoding a large image pauses a
            // member's loop, and if every member paused at the same index, the leader would miss a quorum of acks
            // and step down (check-quorum). Staggered, at most one member is encoding at a time.
            var voters = _raft.Membership.Voters.AllVoters;
            var rank = (ulong)Math.Max(0, voters.Count(v => v < Id));
            var offset = voters.Count > 1 ? rank * every / (ulong)voters.Count : 0;
            if (AppliedIndex < Math.Max(_snapshotIndex, DurableRaftLog.BootstrapIndex + offset) + every) return;
            if (!LogLargeEnoughToSnapshot()) return;

            // One write at a time; the next snapshot is taken once this one is durable.
            if (_snapshotInFlight != 0) return;
            // Only the capture runs here (reference copies); the driver encodes and writes the image off the loop,
            // and Raft's snapshot is recorded when it comes back durable (OnSnapshotPersisted).
            var captured = CaptureState(_raft.Membership, AppliedIndex);
            _bytesAppliedSinceSnapshot = 0;
            Invariant.Check(_log.Storage.TryGetTerm(AppliedIndex, out var term) == StorageStatus.Ok, "the applied entry is still in the log");
            _snapshotInFlight = AppliedIndex;
            _snapshotInFlightImage = (captured, _raft.Membership);
            _outbox.SetSnapshotToPersist(new SnapshotToPersist(AppliedIndex, term, captured) { StreamedSnapshotIndexes = _raft.StreamedSnapshotIndexes() });
            return;
        }
        if (AppliedIndex < Math.Max(_snapshotIndex, DurableRaftLog.BootstrapIndex) + every) return;
        if (!LogLargeEnoughToSnapshot()) return;
        _bytesAppliedSinceSnapshot = 0;
        _log.SaveSnapshot(AppliedIndex, _raft.Membership, EncodeState(_raft.Membership, AppliedIndex), _raft.StreamedSnapshotIndexes());
        _snapshotIndex = AppliedIndex;
        var compactedTo = _raft.Compact(AppliedIndex);
        if (compactedTo > 0) _log.Compact(compactedTo);
    }

    /// <summary>The entries applied since the last snapshot are a large enough share of the store (<see cref="KeelNodeOptions.SnapshotMinLogBytesPerStoreByte"/>).</summary>
    private bool LogLargeEnoughToSnapshot() =>
        _bytesAppliedSinceSnapshot >= (long)(_store.SizeBytes * _options.SnapshotMinLogBytesPerStoreByte);

    /// <summary>
    /// The driver wrote the snapshot it took from <see cref="Outbox.SnapshotToPersist"/> durably (or failed to, when
    /// <paramref name="durable"/> is false: the node takes a new one later). Only now does the WAL refer to it and the
    /// log get compacted, so a crash at any point leaves a WAL that still holds every entry after a durable snapshot.
    /// </summary>
    public void OnSnapshotPersisted(ulong index, ulong term, bool durable = true)
    {
        Invariant.Check(index == _snapshotInFlight, "a persisted snapshot is the one in flight");
        var inFlight = _snapshotInFlightImage;
        _snapshotInFlight = 0;
        _snapshotInFlightImage = null;
        if (!durable || inFlight is not { } captured) return;
        // Raft's snapshot (what a lagging follower is sent) moves up only now; an InstallSnapshot from a leader may
        // have moved it past this one meanwhile, and then this image is moot. Raft reads it from the file the driver
        // wrote (issue 11: not an image of hundreds of MB held in memory for followers that rarely need it).
        if (index <= _log.Storage.Snapshot.Metadata.Index) return;
        _log.CreateSnapshot(index, captured.Membership, _log.OpenStoredSnapshot(index, term));
        if (!_log.MarkSnapshotDurable(index, term)) return;
        _snapshotIndex = Math.Max(_snapshotIndex, index);
        var compactedTo = _raft.Compact(index);
        if (compactedTo > 0) _log.Compact(compactedTo);
    }

    /// <summary>
    /// The replicated state as one image: Raft's configuration, the member table, the remembered proposal ids, the
    /// store, the lease table, the idempotency table, and the clocks of the apply loop. Everything is encoded in a
    /// fixed order (sorted collections), so equal states give equal bytes.
    /// </summary>
    private ReadOnlyMemory<byte> EncodeState(Membership membership, ulong appliedIndex) => CaptureState(membership, appliedIndex).Encode();

    /// <summary>
    /// Captures the replicated state for <see cref="EncodeState"/>: the small parts are encoded now, the store is
    /// captured by reference (<see cref="StoreImage"/>) and written when the image is encoded, possibly on another thread.
    /// </summary>
    private NodeImage CaptureState(Membership membership, ulong appliedIndex)
    {
        var leases = _leases.Snapshot();
        var idempotency = _idempotency.Snapshot();
        using var head = new MemoryStream(64 * 1024 + _appliedProposalOrder.Count * 16);
        using (var writer = new BinaryWriter(head, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(SnapshotMagic);
            writer.Write(SnapshotVersion);
            WriteMembership(writer, membership);
            writer.Write(appliedIndex);
            writer.Write(_lastAppliedTimestamp);
            writer.Write(_leaseBaseMs);
            writer.Write(_members.Count);
            foreach (var member in _members.Values)
            {
                writer.Write(member.Id);
                writer.Write(member.Name);
                WriteStrings(writer, member.PeerUrls);
                WriteStrings(writer, member.ClientUrls);
                writer.Write(member.IsLearner);
            }
            writer.Write(_pendingMemberAdds.Count);
            foreach (var add in _pendingMemberAdds.Values)
            {
                writer.Write(add.MemberId);
                WriteStrings(writer, add.PeerUrls);
                writer.Write(add.IsLearner);
            }
            writer.Write(_appliedProposalOrder.Count);
            foreach (var (index, proposalId) in _appliedProposalOrder)
            {
                writer.Write(index);
                writer.Write(proposalId);
            }
        }
        using var tail = new MemoryStream();
        using (var writer = new BinaryWriter(tail, Encoding.UTF8, leaveOpen: true))
        {
            WriteAlarms(writer);
            _auth.WriteTo(writer);
            _gossipKeys.WriteTo(writer);
            writer.Write(_removedMembers.Count);
            foreach (var (id, removedAtIndex) in _removedMembers)
            {
                writer.Write(id);
                writer.Write(removedAtIndex);
            }
        }
        return new NodeImage(appliedIndex, head.ToArray(), _store.CaptureImage(), leases, idempotency, tail.ToArray());
    }

    /// <summary>
    /// The size of a node image from its parts, in 64-bit arithmetic: a store image near 2 GiB must give a clear
    /// "too large" error, not a wrapped negative size.
    /// </summary>
    internal static long NodeImageBytes(long headBytes, long storeBytes, long leaseBytes, long idempotencyBytes, long tailBytes) =>
        checked(headBytes + 4 + storeBytes + 4 + leaseBytes + 4 + idempotencyBytes + tailBytes);

    /// <summary>Reads the Raft configuration at the start of a node snapshot (for <see cref="DurableRaftLog.Open(Keel.Core.Storage.IStorageDirectory, IEnumerable{ulong}, long, Func{ReadOnlyMemory{byte}, Membership}?)"/>).</summary>
    /// <exception cref="InvalidCommandException">The bytes are not a valid node snapshot.</exception>
    internal static Membership MembershipOf(ReadOnlyMemory<byte> data)
    {
        try
        {
            using var reader = OpenSnapshot(data);
            return ReadMembership(reader);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ConfigurationChangeException
            or (FormatException and not InvalidCommandException))
        {
            throw new InvalidCommandException($"not a valid Keel node snapshot: {e.Message}");
        }
    }

    private static BinaryReader OpenSnapshot(ReadOnlyMemory<byte> data)
    {
        // Read the image in place, whether it is an array (from the WAL and from peers) or a mapped file (the newest
        // snapshot at start-up): no copy of a large image.
        Stream stream = MemoryMarshal.TryGetArray(data, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new ReadOnlyMemoryStream(data);
        var reader = new BinaryReader(stream, Encoding.UTF8);
        if (reader.ReadUInt32() != SnapshotMagic || reader.ReadByte() is not (SnapshotVersion or SnapshotVersionWithoutRemovedMembers or SnapshotVersionWithoutKeyring or SnapshotVersionWithoutAuth or SnapshotVersionWithoutAlarms))
            throw new InvalidCommandException("not a Keel node snapshot (wrong magic or version)");
        return reader;
    }

    /// <summary>
    /// Replaces this replica's state with a node snapshot. The whole image is decoded and checked first; only then is
    /// anything replaced, so a damaged image (a corrupt file, a buggy or hostile leader) changes nothing.
    /// </summary>
    /// <exception cref="InvalidCommandException">The bytes are not a valid node snapshot.</exception>
    private void RestoreState(ReadOnlyMemory<byte> data)
    {
        var image = DecodeState(data);
        _lastAppliedTimestamp = image.LastAppliedTimestamp;
        if (image.LeaseBaseMs > _leaseBaseMs)
        {
            _leaseBaseMs = image.LeaseBaseMs;
            _leaseBaseMonotonicMs = _nowMs == long.MinValue ? 0 : _nowMs;
        }
        _members.Clear();
        foreach (var member in image.Members) _members.Add(member.Id, member);
        MemberTableVersion++;
        _pendingMemberAdds.Clear();
        foreach (var add in image.PendingAdds) _pendingMemberAdds.Add(add.MemberId, add);
        _removedMembers.Clear();
        foreach (var (id, removedAtIndex) in image.RemovedMembers) _removedMembers.Add(id, removedAtIndex);
        _appliedProposals.Clear();
        _appliedProposalOrder.Clear();
        foreach (var entry in image.AppliedProposals)
        {
            _appliedProposalOrder.Enqueue(entry);
            _appliedProposals.Add(entry.ProposalId);
        }
        _store = image.Store;
        var wasPrimary = _leases.IsPrimary;
        _leases = image.Leases;
        _idempotency = image.Idempotency;
        _alarms.Clear();
        foreach (var alarm in image.Alarms) _alarms.Add(alarm);
        _auth = image.Auth;
        _gossipKeys = image.GossipKeys;
        _revokeProposedAtMs.Clear();
        AppliedIndex = image.Index;
        _snapshotIndex = image.Index;
        _bytesAppliedSinceSnapshot = 0;
        // A restored table is not primary; a leader (which never installs a snapshot from others) promotes it again.
        if (wasPrimary) UpdateLeaseRole();
    }

    private sealed record DecodedState(ulong Index, ulong LastAppliedTimestamp, long LeaseBaseMs, List<MemberInfo> Members,
        List<MemberChange> PendingAdds, List<(ulong Index, ulong ProposalId)> AppliedProposals, MvccStore Store, LeaseTable Leases,
        IdempotencyTable Idempotency, List<AlarmMember> Alarms, Keel.Node.Auth.AuthState Auth, Keyring.GossipKeys GossipKeys,
        SortedDictionary<ulong, ulong> RemovedMembers);

    private DecodedState DecodeState(ReadOnlyMemory<byte> data) => DecodeStateWith(data, _options);

    private static DecodedState DecodeStateWith(ReadOnlyMemory<byte> data, KeelNodeOptions options)
    {
        try
        {
            using var reader = OpenSnapshot(data);
            ReadMembership(reader);
            var index = reader.ReadUInt64();
            var lastAppliedTimestamp = reader.ReadUInt64();
            var leaseBaseMs = reader.ReadInt64();
            var members = new List<MemberInfo>();
            for (var i = ReadCount(reader, 8); i > 0; i--)
            {
                var member = new MemberInfo(reader.ReadUInt64(), reader.ReadString(), ReadStrings(reader), ReadStrings(reader), reader.ReadBoolean());
                if (members.Any(m => m.Id == member.Id)) throw new InvalidCommandException($"member {member.Id:x16} twice in a node snapshot");
                members.Add(member);
            }
            var pendingAdds = new List<MemberChange>();
            for (var i = ReadCount(reader, 8); i > 0; i--)
            {
                var id = reader.ReadUInt64();
                var urls = ReadStrings(reader);
                if (pendingAdds.Any(a => a.MemberId == id)) throw new InvalidCommandException($"pending member {id:x16} twice in a node snapshot");
                pendingAdds.Add(MemberChange.Decoded(MemberChangeKind.Add, id, urls, reader.ReadBoolean()));
            }
            var applied = new List<(ulong Index, ulong ProposalId)>();
            var proposalIds = new HashSet<ulong>();
            for (var i = ReadCount(reader, 16); i > 0; i--)
            {
                var entry = (reader.ReadUInt64(), reader.ReadUInt64());
                if (!proposalIds.Add(entry.Item2)) throw new InvalidCommandException("a proposal id twice in a node snapshot");
                applied.Add(entry);
            }
            var store = MvccStore.Restore(ReadBlobInPlace(reader, data), options.ValueSegments);
            var leases = LeaseTable.Restore(ReadBlob(reader), LeaseOptionsFor(options));
            var idempotency = IdempotencyTable.Restore(ReadBlob(reader));
            var alarms = new List<AlarmMember>();
            // Version 1 images end here (no alarms were replicated before version 2).
            if (reader.BaseStream.Position < reader.BaseStream.Length)
            {
                for (var i = ReadCount(reader, 9); i > 0; i--)
                {
                    var alarm = new AlarmMember(reader.ReadUInt64(), (AlarmType)reader.ReadByte());
                    if (!Enum.IsDefined(alarm.Alarm)) throw new InvalidCommandException($"unknown alarm type {(int)alarm.Alarm} in a node snapshot");
                    alarms.Add(alarm);
                }
            }
            // Version 2 images end here (the auth store was added in version 3): auth disabled, no users or roles.
            var auth = reader.BaseStream.Position < reader.BaseStream.Length ? Keel.Node.Auth.AuthState.ReadFrom(reader) : Keel.Node.Auth.AuthState.Empty;
            // Version 3 images end here (the gossip keyring was added in version 4): no keyring, a leader initializes one.
            var gossipKeys = reader.BaseStream.Position < reader.BaseStream.Length ? Keyring.GossipKeys.ReadFrom(reader) : Keyring.GossipKeys.Empty;
            // Version 4 images end here (removed members were added in version 5): no removal is remembered.
            var removedMembers = new SortedDictionary<ulong, ulong>();
            if (reader.BaseStream.Position < reader.BaseStream.Length)
            {
                var count = ReadCount(reader, 16);
                if (count > MaxRemovedMembersRemembered)
                    throw new InvalidCommandException($"{count} removed members in a node snapshot (at most {MaxRemovedMembersRemembered})");
                for (var i = count; i > 0; i--)
                {
                    var id = reader.ReadUInt64();
                    var removedAtIndex = reader.ReadUInt64();
                    if (removedAtIndex == 0 || removedAtIndex > index || !removedMembers.TryAdd(id, removedAtIndex) || members.Any(m => m.Id == id))
                        throw new InvalidCommandException($"removed member {id:x16} (index {removedAtIndex}) twice, in the member table, or removed after the snapshot's index {index}");
                }
            }
            if (reader.BaseStream.Position != reader.BaseStream.Length)
                throw new InvalidCommandException($"{reader.BaseStream.Length - reader.BaseStream.Position} trailing bytes after a node snapshot");
            return new DecodedState(index, lastAppliedTimestamp, leaseBaseMs, members, pendingAdds, applied, store, leases, idempotency, alarms, auth, gossipKeys, removedMembers);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or FormatException or ArgumentException
            or InvariantViolationException or ConfigurationChangeException && e is not InvalidCommandException)
        {
            throw new InvalidCommandException($"not a valid Keel node snapshot: {e.Message}");
        }
    }

    /// <summary>InstallSnapshot: the leader's image replaces this replica's state; writes it covered have unknown outcomes.</summary>
    private void OnSnapshotInstalled(Snapshot snapshot)
    {
        RestoreState(snapshot.Data);
        SnapshotsInstalled++;
        List<ulong>? covered = null;
        foreach (var (index, _) in _proposalAtIndex)
            if (index <= AppliedIndex) (covered ??= []).Add(index);
        if (covered is null) return;
        covered.Sort();
        foreach (var index in covered)
        {
            _proposalAtIndex.Remove(index, out var proposalId);
            if (TakePendingWrite(proposalId, out var waiting)) Respond(KvResult.Failed(waiting.RequestId, KeelError.LeaderChanged));
        }
    }

    private static void WriteMembership(BinaryWriter writer, Membership membership)
    {
        WriteIds(writer, membership.Voters.Incoming.Voters);
        WriteIds(writer, membership.Voters.Outgoing.Voters);
        WriteIds(writer, membership.Learners.ToArray());
        WriteIds(writer, membership.LearnersNext.ToArray());
        writer.Write(membership.AutoLeave);
    }

    private static Membership ReadMembership(BinaryReader reader)
    {
        var incoming = ReadIds(reader);
        var outgoing = ReadIds(reader);
        var learners = ReadIds(reader);
        var learnersNext = ReadIds(reader);
        return new Membership(new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing)), learners, learnersNext, reader.ReadBoolean());
    }

    private static void WriteIds(BinaryWriter writer, ReadOnlySpan<ulong> ids)
    {
        writer.Write(ids.Length);
        foreach (var id in ids) writer.Write(id);
    }

    private static ulong[] ReadIds(BinaryReader reader)
    {
        var ids = new ulong[ReadCount(reader, 8)];
        for (var i = 0; i < ids.Length; i++) ids[i] = reader.ReadUInt64();
        return ids;
    }

    private static void WriteStrings(BinaryWriter writer, IReadOnlyList<string> values)
    {
        writer.Write(values.Count);
        foreach (var value in values) writer.Write(value);
    }

    private static string[] ReadStrings(BinaryReader reader)
    {
        var values = new string[ReadCount(reader, 1)];
        for (var i = 0; i < values.Length; i++) values[i] = reader.ReadString();
        return values;
    }

    private static byte[] ReadBlob(BinaryReader reader) => reader.ReadBytes(ReadCount(reader, 1));

    /// <summary>A blob as a view of the image (the store's image is most of it: not copied again before decoding).</summary>
    private static ReadOnlySpan<byte> ReadBlobInPlace(BinaryReader reader, ReadOnlyMemory<byte> data)
    {
        var count = ReadCount(reader, 1);
        var start = checked((int)reader.BaseStream.Position);
        reader.BaseStream.Position += count;
        return data.Span.Slice(start, count);
    }

    private static int ReadCount(BinaryReader reader, int bytesPerItem)
    {
        var count = reader.ReadInt32();
        if (count < 0 || (long)count * bytesPerItem > reader.BaseStream.Length - reader.BaseStream.Position)
            throw new InvalidCommandException($"count {count} out of range in a node snapshot");
        return count;
    }
}
