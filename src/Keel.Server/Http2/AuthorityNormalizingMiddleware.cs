using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Keel.Server.Http2;

/// <summary>
/// A Kestrel connection middleware for the h2c client listeners: it passes the client's bytes to Kestrel frame by
/// frame and re-encodes a request header block whose <c>:authority</c> is a URL (<see cref="HpackAuthorityRewriter"/>),
/// so etcdctl 3.4's per-endpoint commands work with <c>--endpoints=http://host:port</c>, as they do against etcd.
/// Everything else — other frames, other header blocks, the server's replies — passes through unchanged.
/// </summary>
/// <remarks>
/// A header block is held until its END_HEADERS frame (bounded by <see cref="MaxHeaderBlockBytes"/>); other frames are
/// streamed through without buffering. Anything this middleware cannot follow (no HTTP/2 preface, a header block
/// over the bound, invalid HPACK, interleaved frames) switches the connection to plain pass-through: Kestrel then
/// sees exactly what the client sent and answers it with its own errors.
/// </remarks>
internal static class AuthorityNormalizingMiddleware
{
    /// <summary>The largest header block (HEADERS plus CONTINUATION payloads) held for rewriting.</summary>
    public const int MaxHeaderBlockBytes = 256 * 1024;

    /// <summary>How long calls get to end after the client half-closed the connection, before Kestrel sees the end of its input.</summary>
    public const int ClientClosedGraceMs = 5_000;

    private const int FrameHeaderBytes = 9;
    private const byte HeadersFrame = 0x1;
    private const byte ContinuationFrame = 0x9;
    private const byte EndStream = 0x1;
    private const byte EndHeaders = 0x4;
    private const byte Padded = 0x8;
    private const byte Priority = 0x20;

    // Every peer must accept frames of 16 KiB (RFC 9113 §4.2), so rewritten blocks are cut to that size.
    private const int MinMaxFrameBytes = 16 * 1024;

    private static readonly byte[] ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    /// <summary>Adds the middleware to a listener.</summary>
    public static void UseAuthorityNormalizing(this ListenOptions listen, int headerTableSizeBytes) =>
        listen.Use(next => connection => RunAsync(connection, next, headerTableSizeBytes));

    private static async Task RunAsync(ConnectionContext connection, ConnectionDelegate next, int headerTableSizeBytes)
    {
        var original = connection.Transport;
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, useSynchronizationContext: false));
        var served = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var pump = PumpAsync(original.Input, pipe.Writer, new HpackAuthorityRewriter(headerTableSizeBytes), connection, served.Task);
        connection.Transport = new DuplexPipe(pipe.Reader, original.Output);
        // The socket transport signals ConnectionClosed as soon as the client's FIN arrives, and Kestrel's HTTP/2 layer
        // answers that with a reset; Kestrel downstream sees the signal only after the graceful close had its chance.
        var originalClosed = connection.ConnectionClosed;
        using var closed = new CancellationTokenSource();
        using var onClosed = originalClosed.Register(() => _ = SignalClosedAsync(connection, served.Task, closed));
        connection.ConnectionClosed = closed.Token;
        try
        {
            await next(connection);
        }
        finally
        {
            connection.ConnectionClosed = originalClosed;
            served.TrySetResult();
            await pipe.Reader.CompleteAsync();
            original.Input.CancelPendingRead();
            await pump;
            connection.Transport = original;
        }
    }

    private static async Task PumpAsync(PipeReader input, PipeWriter output, HpackAuthorityRewriter rewriter, ConnectionContext connection, Task served)
    {
        var frames = new FrameReader(rewriter);
        Exception? failure = null;
        try
        {
            while (true)
            {
                var read = await input.ReadAsync();
                var buffer = read.Buffer;
                if (read.IsCanceled)
                {
                    input.AdvanceTo(buffer.Start);
                    break;
                }
                var consumed = frames.Process(buffer, output);
                if (read.IsCompleted)
                {
                    // The client closed its side: a held header block and a partial frame go to Kestrel as they came,
                    // and Kestrel sees the end of the stream exactly where the client ended it.
                    frames.Flush(output);
                    foreach (var segment in buffer.Slice(consumed)) output.Write(segment.Span);
                    input.AdvanceTo(buffer.End);
                    await output.FlushAsync();
                    await CloseGracefullyAsync(connection, served);
                    break;
                }
                input.AdvanceTo(consumed, buffer.End);
                var flush = await output.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled) break;
            }
        }
        catch (Exception error)
        {
            // A reset or aborted socket (or anything else): Kestrel receives the same error from its input.
            failure = error;
        }
        await output.CompleteAsync(failure);
    }

    /// <summary>
    /// The client half-closed the TCP connection (a client process ending, a socket shutdown for writing). Kestrel
    /// answers the end of its input with a reset whenever a call is still open — a long-lived watch or keep-alive
    /// always is — so first ask Kestrel to close the connection gracefully: it sends GOAWAY, the open calls see
    /// <see cref="IConnectionLifetimeNotificationFeature.ConnectionClosedRequested"/> and end, and the connection closes
    /// with a FIN. Calls that do not end within <see cref="ClientClosedGraceMs"/> are cut off as before.
    /// </summary>
    private static async Task CloseGracefullyAsync(ConnectionContext connection, Task served)
    {
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is not { } lifetime) return;
        lifetime.RequestClose();
        await Task.WhenAny(served, Task.Delay(ClientClosedGraceMs));
    }

    private static async Task SignalClosedAsync(ConnectionContext connection, Task served, CancellationTokenSource closed)
    {
        await CloseGracefullyAsync(connection, served);
        try
        {
            await closed.CancelAsync();
        }
        catch (ObjectDisposedException)
        {
            // The connection was already done.
        }
    }

    /// <summary>The frame-by-frame state of one connection's client-to-server bytes.</summary>
    private sealed class FrameReader(HpackAuthorityRewriter rewriter)
    {
        private readonly List<byte[]> _heldFrames = [];
        private readonly ArrayBufferWriter<byte> _block = new();
        private bool _prefaceSeen;
        private bool _passThrough;
        private long _streamBytesLeft;
        private byte _headersFlags;
        private byte[] _priority = [];
        private int _headersStreamId;

        /// <summary>Writes what can be written of <paramref name="buffer"/>; returns how far it was consumed.</summary>
        public SequencePosition Process(ReadOnlySequence<byte> buffer, PipeWriter output)
        {
            var reader = new SequenceReader<byte>(buffer);
            Span<byte> header = stackalloc byte[FrameHeaderBytes];
            while (!reader.End)
            {
                if (_passThrough)
                {
                    Write(output, reader.UnreadSequence);
                    reader.AdvanceToEnd();
                    break;
                }
                if (!_prefaceSeen)
                {
                    if (reader.Remaining < ClientPreface.Length) break;
                    if (!reader.IsNext(ClientPreface, advancePast: false))
                    {
                        _passThrough = true;
                        continue;
                    }
                    Write(output, reader.UnreadSequence.Slice(0, ClientPreface.Length));
                    reader.Advance(ClientPreface.Length);
                    _prefaceSeen = true;
                    continue;
                }
                if (_streamBytesLeft > 0)
                {
                    var chunk = Math.Min(_streamBytesLeft, reader.Remaining);
                    Write(output, reader.UnreadSequence.Slice(0, chunk));
                    reader.Advance(chunk);
                    _streamBytesLeft -= chunk;
                    continue;
                }
                if (reader.Remaining < FrameHeaderBytes) break;
                reader.UnreadSequence.Slice(0, FrameHeaderBytes).CopyTo(header);
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                var type = header[3];
                var flags = header[4];
                var streamId = (int)(BinaryPrimitives.ReadUInt32BigEndian(header[5..]) & 0x7FFF_FFFF);
                var isHeaderBlock = type == HeadersFrame || (type == ContinuationFrame && _heldFrames.Count > 0);
                if (!isHeaderBlock)
                {
                    if (_heldFrames.Count > 0)
                    {
                        // Only CONTINUATION may follow an unfinished header block (Kestrel will say so).
                        GiveUp(output);
                        continue;
                    }
                    Write(output, reader.UnreadSequence.Slice(0, FrameHeaderBytes));
                    reader.Advance(FrameHeaderBytes);
                    _streamBytesLeft = length;
                    continue;
                }
                if (length + _block.WrittenCount > MaxHeaderBlockBytes || (type == HeadersFrame && _heldFrames.Count > 0)
                    || (type == ContinuationFrame && streamId != _headersStreamId))
                {
                    GiveUp(output);
                    continue;
                }
                if (reader.Remaining < FrameHeaderBytes + length) break;
                var frame = reader.UnreadSequence.Slice(0, FrameHeaderBytes + length).ToArray();
                reader.Advance(frame.Length);
                if (!Hold(frame, type, flags, streamId))
                {
                    GiveUp(output);
                    continue;
                }
                if ((flags & EndHeaders) != 0) Release(output);
            }
            return reader.Position;
        }

        /// <summary>At the end of the client's bytes: forwards a held, unfinished header block as it came.</summary>
        public void Flush(PipeWriter output)
        {
            foreach (var frame in _heldFrames) output.Write(frame);
            _heldFrames.Clear();
        }

        private bool Hold(byte[] frame, byte type, byte flags, int streamId)
        {
            var payload = frame.AsSpan(FrameHeaderBytes);
            if (type == HeadersFrame)
            {
                var padding = 0;
                if ((flags & Padded) != 0)
                {
                    if (payload.IsEmpty) return false;
                    padding = payload[0];
                    payload = payload[1..];
                }
                _priority = [];
                if ((flags & Priority) != 0)
                {
                    if (payload.Length < 5) return false;
                    _priority = payload[..5].ToArray();
                    payload = payload[5..];
                }
                if (padding > payload.Length) return false;
                payload = payload[..^padding];
                _headersFlags = flags;
                _headersStreamId = streamId;
                _block.Clear();
            }
            _block.Write(payload);
            _heldFrames.Add(frame);
            return true;
        }

        private void Release(PipeWriter output)
        {
            byte[]? rewritten;
            try
            {
                rewritten = rewriter.Rewrite(_block.WrittenSpan);
            }
            catch (HpackException)
            {
                GiveUp(output);
                return;
            }
            if (rewritten is null)
            {
                Flush(output);
            }
            else
            {
                var payload = new byte[_priority.Length + rewritten.Length];
                _priority.CopyTo(payload, 0);
                rewritten.CopyTo(payload, _priority.Length);
                var offset = 0;
                var firstFrame = true;
                do
                {
                    var size = Math.Min(MinMaxFrameBytes, payload.Length - offset);
                    var last = offset + size == payload.Length;
                    var flags = (byte)((last ? EndHeaders : 0) | (firstFrame ? (_headersFlags & (EndStream | Priority)) : 0));
                    WriteFrameHeader(output, size, firstFrame ? HeadersFrame : ContinuationFrame, flags, _headersStreamId);
                    output.Write(payload.AsSpan(offset, size));
                    offset += size;
                    firstFrame = false;
                }
                while (offset < payload.Length);
                _heldFrames.Clear();
            }
            _block.Clear();
        }

        private void GiveUp(PipeWriter output)
        {
            Flush(output);
            _block.Clear();
            _passThrough = true;
        }

        private static void WriteFrameHeader(PipeWriter output, int length, byte type, byte flags, int streamId)
        {
            Span<byte> header = stackalloc byte[FrameHeaderBytes];
            header[0] = (byte)(length >> 16);
            header[1] = (byte)(length >> 8);
            header[2] = (byte)length;
            header[3] = type;
            header[4] = flags;
            BinaryPrimitives.WriteUInt32BigEndian(header[5..], (uint)streamId);
            output.Write(header);
        }

        private static void Write(PipeWriter output, ReadOnlySequence<byte> bytes)
        {
            foreach (var segment in bytes) output.Write(segment.Span);
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
