using Keel.Core;
using Keel.Core.Encoding;
using Keel.Mvcc;

namespace Keel.Node;

/// <summary>
/// A node's replicated state captured at one applied index, to be encoded into a snapshot image later and on any
/// thread (issue 11: the encoding of a large store never runs on the node loop). The small parts (member table, lease
/// and idempotency tables, alarms, auth) are encoded at capture; the store is a <see cref="StoreImage"/>, which holds
/// references to immutable versions and is written straight into its slot of the one final array.
/// </summary>
public sealed class NodeImage
{
    private readonly byte[] _head;
    private readonly StoreImage _store;
    private readonly byte[] _leases;
    private readonly byte[] _idempotency;
    private readonly byte[] _tail;
    private byte[]? _encoded;

    internal NodeImage(ulong index, byte[] head, StoreImage store, byte[] leases, byte[] idempotency, byte[] tail)
    {
        Index = index;
        _head = head;
        _store = store;
        _leases = leases;
        _idempotency = idempotency;
        _tail = tail;
    }

    /// <summary>The applied index the image reflects.</summary>
    public ulong Index { get; }

    /// <summary>The encoded image once <see cref="Encode"/> ran, else null.</summary>
    public ReadOnlyMemory<byte>? Encoded => _encoded is { } encoded ? encoded : (ReadOnlyMemory<byte>?)null;

    /// <summary>The exact size of the encoded image, in 64-bit arithmetic.</summary>
    public long SizeBytes => KeelNode.NodeImageBytes(_head.Length, _store.SizeBytes, _leases.Length, _idempotency.Length, _tail.Length);

    /// <summary>
    /// Encodes the image into a new array (once; later calls return the same bytes). Call it from one thread at a
    /// time: the driver encodes on a background thread and hands the node the result through its loop.
    /// </summary>
    /// <exception cref="ImageTooLargeException">The image would not fit in one array (about 2 GiB).</exception>
    public ReadOnlyMemory<byte> Encode()
    {
        if (_encoded is { } done) return done;
        var image = new byte[ImageSize.CheckFitsOneArray(SizeBytes, "the node's snapshot image")];
        var writer = new ChunkedImageWriter(image);
        EncodeTo(writer);
        writer.Complete();
        return _encoded = image;
    }

    /// <summary>
    /// Encodes the image through <paramref name="writer"/>, which streams it in bounded chunks (a snapshot file: no buffer
    /// of the image's size, issue 11) or writes it into an array; exactly <see cref="SizeBytes"/> bytes.
    /// </summary>
    /// <exception cref="ImageTooLargeException">The store's image would not fit in one span (about 2 GiB).</exception>
    /// <exception cref="ArgumentException">The writer does not expect exactly the image's size.</exception>
    public void EncodeTo(ChunkedImageWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        // Layout (unchanged since version 2): head, then the store, lease and idempotency images as length-prefixed
        // blobs, then the alarms and auth. Sizes are summed in 64 bits and checked against the array limit.
        if (writer.TotalBytes != SizeBytes || writer.Position != 0)
            throw new ArgumentException($"the writer expects {writer.TotalBytes} bytes from offset {writer.Position}; the image is {SizeBytes}", nameof(writer));
        writer.Bytes(_head);
        writer.I32(ImageSize.CheckFitsOneArray(_store.SizeBytes, "the MVCC store's snapshot image"));
        _store.WriteTo(writer);
        foreach (var blob in new[] { _leases, _idempotency })
        {
            writer.I32(blob.Length);
            writer.Bytes(blob);
        }
        writer.Bytes(_tail);
        Invariant.Check(writer.Position == SizeBytes, "the node image was sized exactly");
    }
}
