namespace Keel.Core.Encoding;

/// <summary>
/// Size arithmetic of state images (snapshots): sizes are summed in 64 bits, and an image that must be one array is
/// checked against the runtime's array limit with a clear error instead of wrapping a 32-bit sum past 2 GiB (which
/// would fail every member at the same point).
/// </summary>
public static class ImageSize
{
    /// <summary>The largest image that fits one byte array.</summary>
    public static long MaxArrayBytes => Array.MaxLength;

    /// <summary>Returns <paramref name="bytes"/> as an array length, or throws if it cannot be one array.</summary>
    /// <param name="bytes">The image size, summed in 64 bits.</param>
    /// <param name="what">What the image is, for the message.</param>
    /// <exception cref="ImageTooLargeException">Above <see cref="MaxArrayBytes"/>.</exception>
    public static int CheckFitsOneArray(long bytes, string what)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > MaxArrayBytes) throw new ImageTooLargeException(what, bytes);
        return (int)bytes;
    }
}

/// <summary>A state image is larger than one array can hold (about 2 GiB); compact history or lower the space quota.</summary>
public sealed class ImageTooLargeException(string what, long bytes)
    : InvalidOperationException($"{what} is {bytes} bytes, above the {Array.MaxLength} bytes one image can hold; compact the history or lower the space quota (--quota-backend-bytes)")
{
    /// <summary>The size the image would have had.</summary>
    public long Bytes { get; } = bytes;
}
