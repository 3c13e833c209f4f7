using Keel.Raft;
using Keel.Storage;

namespace Keel.Node;

/// <summary>
/// Raft's view of a durable snapshot file (<see cref="SnapshotFile"/>): the image a leader streams to a lagging follower
/// is read from the file chunk by chunk, checked against the file's CRC32C on the way, instead of held in memory.
/// </summary>
internal sealed class StoredSnapshotFile(SnapshotFile file) : IStoredSnapshotData
{
    public long LengthBytes => file.LengthBytes;

    public ISnapshotReader OpenReader() => new Reader(file.OpenReader());

    public override string ToString() => file.Name;

    private sealed class Reader(SnapshotFile.Reader reader) : ISnapshotReader
    {
        public bool TryRead(long offsetBytes, int countBytes, out ReadOnlyMemory<byte> chunk)
        {
            var read = reader.TryRead(offsetBytes, countBytes, out var bytes);
            chunk = bytes;
            return read;
        }
    }
}
