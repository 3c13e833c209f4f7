using System.Security.Cryptography;
using Keel.Mvcc;

namespace Keel.Node;

/// <summary>What a backup holds, as <c>keel snapshot status</c> prints it.</summary>
/// <param name="Revision">The store revision at the backup.</param>
/// <param name="CompactRevision">The store's compaction point.</param>
/// <param name="Keys">Keys in the store's index.</param>
/// <param name="Leases">Leases granted and not revoked.</param>
/// <param name="Members">Members of the cluster it was taken from.</param>
/// <param name="AppliedIndex">The Raft index it was taken at.</param>
/// <param name="HashKv">etcd's HashKV of the store at <paramref name="Revision"/> (equal on the restored cluster).</param>
/// <param name="StoreSizeBytes">The store's size.</param>
/// <param name="TotalBytes">The backup's size.</param>
public sealed record BackupInfo(long Revision, long CompactRevision, int Keys, int Leases, int Members, ulong AppliedIndex,
    uint HashKv, long StoreSizeBytes, long TotalBytes);

// Backup and restore of the whole replicated state (etcd's snapshot save / etcdutl snapshot restore).
public sealed partial class KeelNode
{
    /// <summary>The bytes that follow a backup image: its SHA-256, as etcd appends one to its snapshot stream.</summary>
    public const int BackupChecksumBytes = 32;

    /// <summary>
    /// The whole replicated state at the applied index — store with its history, leases, members, idempotency table,
    /// alarms — followed by its SHA-256 (<see cref="BackupChecksumBytes"/>): what <c>keel snapshot save</c> writes.
    /// </summary>
    public byte[] EncodeBackup() => EncodeBackup(CaptureBackup());

    /// <summary>Captures the state for a backup on the node's thread; <see cref="EncodeBackup(NodeImage)"/> encodes it on any thread.</summary>
    public NodeImage CaptureBackup() => CaptureState(_raft.Membership, AppliedIndex);

    /// <summary>Encodes a captured state and appends its SHA-256: the bytes of <see cref="EncodeBackup()"/>.</summary>
    public static byte[] EncodeBackup(NodeImage captured)
    {
        ArgumentNullException.ThrowIfNull(captured);
        var image = captured.Encode();
        var backup = new byte[image.Length + BackupChecksumBytes];
        image.Span.CopyTo(backup);
        SHA256.HashData(image.Span, backup.AsSpan(image.Length));
        return backup;
    }

    /// <summary>Checks a backup's checksum and returns its image (the bytes before the checksum).</summary>
    /// <exception cref="InvalidCommandException">The file is truncated or its checksum does not match.</exception>
    public static ReadOnlyMemory<byte> VerifyBackup(ReadOnlyMemory<byte> backup)
    {
        if (backup.Length <= BackupChecksumBytes)
            throw new InvalidCommandException($"a backup of {backup.Length} bytes is too short to hold a state image and its SHA-256");
        var image = backup[..^BackupChecksumBytes];
        Span<byte> hash = stackalloc byte[BackupChecksumBytes];
        SHA256.HashData(image.Span, hash);
        if (!hash.SequenceEqual(backup.Span[^BackupChecksumBytes..]))
            throw new InvalidCommandException($"the backup's SHA-256 does not match its {image.Length} bytes: the file is damaged or incomplete");
        return image;
    }

    /// <summary>Decodes a verified backup image and describes it.</summary>
    /// <exception cref="InvalidCommandException">The image is not a Keel node state.</exception>
    public static BackupInfo DescribeBackup(ReadOnlyMemory<byte> image)
    {
        // Only the lease table's timing options are read from these; the defaults describe any backup.
        var state = DecodeStateWith(image, new KeelNodeOptions { NodeId = 1, Random = new Keel.Core.DeterministicRandom(1) });
        return new BackupInfo(state.Store.CurrentRevision, state.Store.CompactRevision, state.Store.IndexedKeyCount,
            state.Leases.Count, state.Members.Count, state.Index, state.Store.HashKv(0).Hash, state.Store.SizeBytes,
            image.Length + BackupChecksumBytes);
    }

    /// <summary>Takes a backup's store, leases and idempotency table as this new cluster's initial state; members are the new ones.</summary>
    private void RestoreBackup(ReadOnlyMemory<byte> image)
    {
        var state = DecodeState(image);
        _store = state.Store;
        _leases = state.Leases;
        _idempotency = state.Idempotency;
        // Users and roles travel with a backup, as they do in etcd's bolt database.
        _auth = state.Auth;
        // So does the gossip keyring: agents of the old cluster keep talking to the restored one.
        _gossipKeys = state.GossipKeys;
        _lastAppliedTimestamp = state.LastAppliedTimestamp;
        if (state.LeaseBaseMs > _leaseBaseMs) _leaseBaseMs = state.LeaseBaseMs;
    }
}
