using Keel.Gossip;

namespace Keel.Gossip.Hosting;

/// <summary>
/// Reads <c>--gossip-key-file</c>: one base64 AES-256 key (32 bytes) per line, the first the primary; blank lines and
/// lines starting with <c>#</c> are skipped, and only a line's first word counts, so the output of
/// <c>keel keyring list</c> (key, then "primary") can be saved as a key file. Keys are read from a file, never from
/// the command line, where <c>ps</c> and shell histories show them.
/// </summary>
public static class GossipKeyFile
{
    /// <summary>The keys of <paramref name="path"/>, primary first.</summary>
    /// <exception cref="ArgumentException">The file cannot be read, holds no key, or a line is not a base64 32-byte key.</exception>
    public static IReadOnlyList<byte[]> Read(string path, string flag = "--gossip-key-file")
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{flag}: cannot read {path}: {exception.Message}", exception);
        }
        return Parse(text, $"{flag} {path}");
    }

    /// <summary>The keys in <paramref name="text"/> (the file format), primary first.</summary>
    /// <exception cref="ArgumentException">No key, too many, or a line is not a base64 32-byte key.</exception>
    public static IReadOnlyList<byte[]> Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        var keys = new List<byte[]>();
        var lineNumber = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNumber++;
            var line = rawLine.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var word = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries)[0];
            keys.Add(ParseKey(word, $"{source}, line {lineNumber}"));
        }
        if (keys.Count == 0) throw new ArgumentException($"{source} holds no key (one base64 key per line, e.g. from `openssl rand -base64 32`)");
        if (keys.Count > GossipKeyring.MaxKeys) throw new ArgumentException($"{source} holds {keys.Count} keys; at most {GossipKeyring.MaxKeys}");
        return keys;
    }

    /// <summary>One base64 key.</summary>
    /// <exception cref="ArgumentException">Not base64 or not 32 bytes (the message never repeats the key).</exception>
    public static byte[] ParseKey(string text, string source)
    {
        byte[] key;
        try
        {
            key = Convert.FromBase64String(text.Trim());
        }
        catch (FormatException)
        {
            throw new ArgumentException($"{source}: not base64 (make a key with `openssl rand -base64 32`)");
        }
        if (GossipKeyring.Problem(key) is { } problem) throw new ArgumentException($"{source}: {problem}");
        return key;
    }

    /// <summary>A short, non-secret name of a key for logs and listings: the first 8 hex digits of its SHA-256.</summary>
    public static string Fingerprint(ReadOnlySpan<byte> key) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(key))[..8];

    /// <summary>
    /// Keeps <paramref name="agent"/>'s keys following the file at <paramref name="path"/> until cancelled: the file is
    /// checked every <paramref name="every"/> and its keys applied when its contents change and parse. A rotation on the
    /// servers goes through the replicated keyring; agents get the new file (written by hand, a config map, a secret
    /// store), so they must pick it up without a restart. A file that cannot be read or parsed keeps the current keys
    /// and is reported through <paramref name="kept"/> (the message never contains a key).
    /// </summary>
    /// <returns>A task that ends when <paramref name="cancellation"/> is cancelled or the agent is disposed.</returns>
    public static async Task FollowAsync(GossipAgent agent, string path, TimeSpan every, Action<IReadOnlyList<byte[]>> reloaded, Action<Exception> kept,
        CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(reloaded);
        ArgumentNullException.ThrowIfNull(kept);
        string last;
        try
        {
            last = await File.ReadAllTextAsync(path, cancellation).ConfigureAwait(false);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            last = "";
        }
        catch (OperationCanceledException)
        {
            return;
        }
        while (!cancellation.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(every, cancellation).ConfigureAwait(false);
                var text = await File.ReadAllTextAsync(path, cancellation).ConfigureAwait(false);
                if (text == last) continue;
                last = text;
                var keys = Parse(text, $"gossip key file {path}");
                await agent.SetKeysAsync(keys).ConfigureAwait(false);
                reloaded(keys);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception error) when (error is IOException or UnauthorizedAccessException or ArgumentException)
            {
                kept(error);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }
}
