using System.Text;
using Keel.Core.Encoding;

namespace Keel.Idempotency;

public sealed partial class IdempotencyTable
{
    // Layout, little-endian, version 1:
    //   "KIDT" magic, version byte
    //   options: completedWindowMs i64, inFlightWindowMs i64, maxEntries i32, maxTotalResponseBytes i64,
    //            maxResponseBytesPerEntry i32, sweepLimitPerOperation i32
    //   lastNowMs i64, 11 counters i64, entry count i32
    //   entries in expiry order then key ordinal order: flags u8 (bit 0 = completed), key length u8, key ASCII,
    //     fingerprint 32 bytes, claimedAtMs i64, and if completed: completedAtMs i64, status i32, body length i32, body
    //   CRC-32 (IEEE) of everything before it, u32
    // Expiry times are not stored: they follow from the claim or completion time and the windows.
    private static ReadOnlySpan<byte> SnapshotMagic => "KIDT"u8;
    private const byte SnapshotVersion = 1;
    private const int HeaderBytes = 4 + 1 + 36 + 8 + 11 * 8 + 4;
    private const int ChecksumBytes = ChecksummedFrame.ChecksumBytes;
    private const byte CompletedFlag = 1;

    /// <summary>
    /// Encodes the whole state (options, time, counters, every entry) compactly. Equal tables give equal bytes, since
    /// entries are written in expiry order, then key ordinal order, never in hash-table order. The encoding carries a
    /// version byte and a CRC-32 so that <see cref="Restore(ReadOnlySpan{byte})"/> can refuse damaged input.
    /// </summary>
    public byte[] Snapshot()
    {
        var ordered = new Entry[_entries.Count];
        var next = 0;
        foreach (var entry in _inFlightByExpiry) ordered[next++] = entry;
        foreach (var entry in _completedByExpiry) ordered[next++] = entry;
        Array.Sort(ordered, EntryExpiryComparer.Instance);

        var size = HeaderBytes + ChecksumBytes;
        foreach (var entry in ordered)
            size += 2 + entry.Key.Length + RequestFingerprint.SizeBytes + 8 + (entry.IsCompleted ? 16 + entry.Body!.Length : 0);

        var buffer = new byte[size];
        var writer = new BinarySpanWriter(buffer);
        ChecksummedFrame.WriteHeader(ref writer, SnapshotMagic, SnapshotVersion);
        writer.I64(Options.CompletedWindowMs);
        writer.I64(Options.InFlightWindowMs);
        writer.I32(Options.MaxEntries);
        writer.I64(Options.MaxTotalResponseBytes);
        writer.I32(Options.MaxResponseBytesPerEntry);
        writer.I32(Options.SweepLimitPerOperation);
        writer.I64(_lastNowMs);
        foreach (var counter in CounterValues()) writer.I64(counter);
        writer.I32(ordered.Length);
        foreach (var entry in ordered)
        {
            writer.U8(entry.IsCompleted ? CompletedFlag : (byte)0);
            writer.U8((byte)entry.Key.Length);
            Encoding.ASCII.GetBytes(entry.Key, writer.Take(entry.Key.Length));
            entry.Fingerprint.WriteTo(writer.Take(RequestFingerprint.SizeBytes));
            writer.I64(entry.ClaimedAtMs);
            if (!entry.IsCompleted) continue;
            writer.I64(entry.CompletedAtMs);
            writer.I32(entry.StatusCode);
            writer.I32(entry.Body!.Length);
            writer.Bytes(entry.Body);
        }
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
        return buffer;
    }

    /// <summary>
    /// Rebuilds a table from <see cref="Snapshot"/> output. The restored table has the snapshot's options, time,
    /// counters and entries, and answers every later operation exactly as the original would.
    /// </summary>
    /// <exception cref="IdempotencySnapshotException">The input is truncated, damaged (checksum), of an unknown version,
    /// or describes a state no table can reach (invalid key, duplicate key, times out of order, bounds exceeded).</exception>
    public static IdempotencyTable Restore(ReadOnlySpan<byte> snapshot)
    {
        if (snapshot.Length < HeaderBytes + ChecksumBytes)
            throw new IdempotencySnapshotException($"The snapshot is {snapshot.Length} bytes; even an empty table takes {HeaderBytes + ChecksumBytes}.");
        // Checksum before magic and version: a damaged snapshot is reported as damaged, whatever byte was hit.
        var frame = ChecksummedFrame.Inspect(snapshot, SnapshotMagic);
        if (!frame.ChecksumMatches)
            throw new IdempotencySnapshotException($"The snapshot checksum does not match (stored 0x{frame.StoredChecksum:X8}, computed 0x{frame.ComputedChecksum:X8}): the data is damaged.");
        if (!frame.MagicMatches)
            throw new IdempotencySnapshotException("The data is not an idempotency-table snapshot (wrong magic).");
        if (frame.Version != SnapshotVersion)
            throw new IdempotencySnapshotException($"The snapshot has version {frame.Version}; this build reads version {SnapshotVersion}.");

        var reader = frame.PayloadReader();
        try
        {
            return ReadTable(ref reader);
        }
        catch (EncodingFormatException e)
        {
            // Offsets count from the start of the snapshot, as the reader started there.
            throw new IdempotencySnapshotException(e.Problem == EncodingProblem.Truncated
                ? $"The snapshot is truncated: needed {e.Value} bytes at offset {e.Offset}, {e.AvailableBytes} left."
                : $"The snapshot is malformed: {e.Message}", e);
        }
    }

    private static IdempotencyTable ReadTable(ref BinarySpanReader reader)
    {

        var options = new IdempotencyOptions
        {
            CompletedWindowMs = reader.I64(),
            InFlightWindowMs = reader.I64(),
            MaxEntries = reader.I32(),
            MaxTotalResponseBytes = reader.I64(),
            MaxResponseBytesPerEntry = reader.I32(),
            SweepLimitPerOperation = reader.I32(),
        };
        IdempotencyTable table;
        try
        {
            table = new IdempotencyTable(options);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new IdempotencySnapshotException($"The snapshot's options are invalid: {e.Message}", e);
        }

        var lastNowMs = reader.I64();
        if (lastNowMs < 0) throw new IdempotencySnapshotException($"The snapshot's time {lastNowMs} ms is negative.");
        table._lastNowMs = lastNowMs;
        Span<long> counters = stackalloc long[11];
        for (var i = 0; i < counters.Length; i++)
        {
            counters[i] = reader.I64();
            if (counters[i] < 0) throw new IdempotencySnapshotException($"The snapshot's counter #{i} is negative ({counters[i]}).");
        }
        table.SetCounters(counters);

        var count = reader.I32();
        if (count < 0 || count > options.MaxEntries)
            throw new IdempotencySnapshotException($"The snapshot holds {count} entries; the bound is {options.MaxEntries}.");
        Entry? previous = null;
        for (var i = 0; i < count; i++)
        {
            var entry = ReadEntry(ref reader, options, lastNowMs, i);
            if (previous is not null && EntryExpiryComparer.Instance.Compare(previous, entry) >= 0)
                throw new IdempotencySnapshotException($"Snapshot entry #{i} is out of order or repeats a key: entries must be in expiry then key order.");
            if (!table._entries.TryAdd(entry.Key, entry))
                throw new IdempotencySnapshotException($"Snapshot entry #{i} repeats key '{entry.Key}'.");
            if (entry.IsCompleted)
            {
                table._completedByExpiry.Add(entry);
                table._responseBytes += entry.Body!.Length;
            }
            else
            {
                table._inFlightByExpiry.Add(entry);
            }
            previous = entry;
        }
        if (table._responseBytes > options.MaxTotalResponseBytes)
            throw new IdempotencySnapshotException($"The snapshot stores {table._responseBytes} response bytes; the bound is {options.MaxTotalResponseBytes}.");
        if (!reader.IsAtEnd)
            throw new IdempotencySnapshotException($"The snapshot has {reader.Remaining} bytes after its last entry.");
        table._nextExpiryLowerBoundMs = table.EarliestExpiryMs();
        table.AssertInvariants();
        return table;
    }

    private static Entry ReadEntry(ref BinarySpanReader reader, IdempotencyOptions options, long lastNowMs, int index)
    {
        var flags = reader.U8();
        if ((flags & ~CompletedFlag) != 0) throw new IdempotencySnapshotException($"Snapshot entry #{index} has unknown flags 0x{flags:X2}.");
        var keyLength = reader.U8();
        var keyBytes = reader.ReadBytes(keyLength);
        var key = Encoding.ASCII.GetString(keyBytes);
        var keyProblem = IdempotencyKey.DescribeProblem(key);
        if (keyProblem is not null || keyBytes.ContainsAnyExceptInRange((byte)IdempotencyKey.MinChar, (byte)IdempotencyKey.MaxChar))
            throw new IdempotencySnapshotException($"Snapshot entry #{index} has an invalid key: {keyProblem ?? "non-ASCII bytes"}");
        var fingerprint = RequestFingerprint.FromBytes(reader.ReadBytes(RequestFingerprint.SizeBytes));
        var claimedAtMs = reader.I64();
        if (claimedAtMs < 0 || claimedAtMs > lastNowMs)
            throw new IdempotencySnapshotException($"Snapshot entry #{index} was claimed at {claimedAtMs} ms, outside [0, {lastNowMs}].");
        var entry = new Entry(key, fingerprint, claimedAtMs, SaturatingAdd(claimedAtMs, options.InFlightWindowMs));
        if ((flags & CompletedFlag) == 0) return entry;

        var completedAtMs = reader.I64();
        if (completedAtMs < claimedAtMs || completedAtMs > lastNowMs)
            throw new IdempotencySnapshotException($"Snapshot entry #{index} completed at {completedAtMs} ms, outside [{claimedAtMs}, {lastNowMs}].");
        if (completedAtMs >= SaturatingAdd(claimedAtMs, options.InFlightWindowMs))
            throw new IdempotencySnapshotException($"Snapshot entry #{index} completed at {completedAtMs} ms, after its claim had expired.");
        var statusCode = reader.I32();
        var bodyLength = reader.I32();
        if (bodyLength < 0 || bodyLength > options.MaxResponseBytesPerEntry)
            throw new IdempotencySnapshotException($"Snapshot entry #{index} has a {bodyLength}-byte body; the per-entry bound is {options.MaxResponseBytesPerEntry}.");
        entry.IsCompleted = true;
        entry.CompletedAtMs = completedAtMs;
        entry.ExpiresAtMs = SaturatingAdd(completedAtMs, options.CompletedWindowMs);
        entry.StatusCode = statusCode;
        entry.Body = bodyLength == 0 ? [] : reader.ReadBytes(bodyLength).ToArray();
        return entry;
    }

    private long[] CounterValues() =>
        [_hits, _misses, _mismatches, _inFlightConflicts, _tableFullRejections, _completions, _releases,
         _unknownClaims, _responsesTooLarge, _evictions, _expirations];

    private void SetCounters(ReadOnlySpan<long> values)
    {
        _hits = values[0];
        _misses = values[1];
        _mismatches = values[2];
        _inFlightConflicts = values[3];
        _tableFullRejections = values[4];
        _completions = values[5];
        _releases = values[6];
        _unknownClaims = values[7];
        _responsesTooLarge = values[8];
        _evictions = values[9];
        _expirations = values[10];
    }
}
