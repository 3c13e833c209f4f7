using System.Buffers.Binary;
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
        EncodeTo(image);
        return _encoded = image;
    }

    /// <summary>
    /// Encodes the image into <paramref name="image"/>, exactly <see cref="SizeBytes"/> long (memory the caller owns,
    /// e.g. native memory freed once the image is written to its file).
    /// </summary>
    /// <exception cref="ImageTooLargeException">The store's image would not fit in one span (about 2 GiB).</exception>
    /// <exception cref="ArgumentException">The destination is not exactly the image's size.</exception>
    public void EncodeTo(Span<byte> image)
    {
        // Layout (unchanged since version 2): head, then the store, lease and idempotency images as length-prefixed
        // blobs, then the alarms and auth. Sizes are summed in 64 bits and checked against the array limit.
        if (image.Length != SizeBytes) throw new ArgumentException($"the destination is {image.Length} bytes; the image is {SizeBytes}", nameof(image));
        var storeBytes = _store.SizeBytes;
        var position = 0;
        _head.CopyTo(image);
        position += _head.Length;
        BinaryPrimitives.WriteInt32LittleEndian(image[position..], ImageSize.CheckFitsOneArray(storeBytes, "the MVCC store's snapshot image"));
        position += 4;
        _store.WriteTo(image.Slice(position, (int)storeBytes));
        position += (int)storeBytes;
        foreach (var blob in new[] { _leases, _idempotency })
        {
            BinaryPrimitives.WriteInt32LittleEndian(image[position..], blob.Length);
            position += 4;
            blob.CopyTo(image[position..]);
            position += blob.Length;
        }
        _tail.CopyTo(image[position..]);
        position += _tail.Length;
        Invariant.Check(position == image.Length, "the node image was sized exactly");
    }
}
