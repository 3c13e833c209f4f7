namespace Keel.Core.Encoding;

/// <summary>What <see cref="EncodingFormatException"/> found wrong with an encoding.</summary>
public enum EncodingProblem
{
    /// <summary>A read needed more bytes than were left.</summary>
    Truncated,

    /// <summary>A count or length was negative, or promised more items than the bytes left could hold.</summary>
    CountOutOfRange,

    /// <summary>A frame was shorter than its header and checksum trailer.</summary>
    FrameTooShort,

    /// <summary>A frame did not start with the expected magic bytes.</summary>
    WrongMagic,

    /// <summary>A frame carried a version this build does not read.</summary>
    UnsupportedVersion,

    /// <summary>A frame's CRC-32 trailer did not match its contents.</summary>
    ChecksumMismatch,

    /// <summary>The fields decode, but together describe a state the component's rules forbid (e.g. duplicate keys,
    /// revisions out of order): damage the checksum could not see, or an encoder bug.</summary>
    InconsistentContent,
}

/// <summary>
/// Bytes handed to <see cref="BinarySpanReader"/> or <see cref="ChecksummedFrame"/> are not a valid encoding: they are
/// truncated, damaged or were never one. It is an expected failure on untrusted input (a snapshot from disk or the
/// network), not a bug, so it is a typed <see cref="FormatException"/> carrying the facts as properties; a component
/// may catch it and rethrow its own typed error (e.g. a lease-snapshot error) with its own wording.
/// </summary>
public sealed class EncodingFormatException : FormatException
{
    /// <summary>Creates the exception; the message is derived from the facts.</summary>
    /// <param name="problem">What is wrong.</param>
    /// <param name="offset">Offset, from the start of the encoding, of the field that failed.</param>
    /// <param name="value">The number behind the failure: bytes needed (<see cref="EncodingProblem.Truncated"/>), the
    /// count read (<see cref="EncodingProblem.CountOutOfRange"/>), the frame length, the version read, or the stored checksum.</param>
    /// <param name="availableBytes">Bytes left at <paramref name="offset"/> (for a checksum mismatch: the computed checksum).</param>
    public EncodingFormatException(EncodingProblem problem, int offset, long value, long availableBytes)
        : base(Describe(problem, offset, value, availableBytes))
    {
        Problem = problem;
        Offset = offset;
        Value = value;
        AvailableBytes = availableBytes;
    }

    /// <summary>
    /// Creates an <see cref="EncodingProblem.InconsistentContent"/> exception: the bytes decode, but what they describe
    /// breaks a rule, which <paramref name="detail"/> names.
    /// </summary>
    /// <param name="offset">Offset of the end of the decoded content (or of the offending field, when known).</param>
    /// <param name="detail">The rule that is broken.</param>
    /// <param name="inner">The check that failed, if it raised an exception.</param>
    public EncodingFormatException(int offset, string detail, Exception? inner = null)
        : base($"The encoding decodes but is inconsistent (checked at offset {offset}): {detail}", inner)
    {
        Problem = EncodingProblem.InconsistentContent;
        Offset = offset;
    }

    /// <summary>What is wrong.</summary>
    public EncodingProblem Problem { get; }

    /// <summary>Offset, from the start of the encoding, of the field that failed.</summary>
    public int Offset { get; }

    /// <summary>
    /// The number behind the failure: bytes needed for <see cref="EncodingProblem.Truncated"/>, the count read for
    /// <see cref="EncodingProblem.CountOutOfRange"/>, the frame length for <see cref="EncodingProblem.FrameTooShort"/>,
    /// the version read for <see cref="EncodingProblem.UnsupportedVersion"/>, the stored CRC-32 for
    /// <see cref="EncodingProblem.ChecksumMismatch"/>.
    /// </summary>
    public long Value { get; }

    /// <summary>Bytes left at <see cref="Offset"/>; for <see cref="EncodingProblem.ChecksumMismatch"/> the computed CRC-32,
    /// for <see cref="EncodingProblem.UnsupportedVersion"/> the version expected, for
    /// <see cref="EncodingProblem.FrameTooShort"/> the minimum frame length.</summary>
    public long AvailableBytes { get; }

    private static string Describe(EncodingProblem problem, int offset, long value, long availableBytes) => problem switch
    {
        EncodingProblem.Truncated => $"The encoding is truncated: needed {value} bytes at offset {offset}, {availableBytes} left.",
        EncodingProblem.CountOutOfRange => $"The count {value} at offset {offset} is out of range: {availableBytes} bytes are left after it.",
        EncodingProblem.FrameTooShort => $"The frame is {value} bytes; even an empty one takes {availableBytes}.",
        EncodingProblem.WrongMagic => "The frame does not start with the expected magic bytes.",
        EncodingProblem.UnsupportedVersion => $"The frame has version {value} at offset {offset}; this build reads version {availableBytes}.",
        EncodingProblem.ChecksumMismatch => $"The frame checksum does not match (stored 0x{value:X8}, computed 0x{availableBytes:X8}): the data is damaged.",
        _ => $"The encoding is invalid ({problem}) at offset {offset}.",
    };
}
