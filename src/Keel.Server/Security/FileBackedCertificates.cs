using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Security;

/// <summary>
/// A value loaded from files and loaded again when any of them changes (size or write time), checked at most once a
/// second as connections ask for it. Why: certificates are rotated on disk (by cert-manager, a cron job) and a
/// coordination service must not restart to pick them up. A reload that fails (a key that no longer matches its
/// certificate because only one of the two files was replaced yet, a half-written file) keeps the previous value and
/// is tried again at the next check, so the server never serves without a certificate.
/// </summary>
/// <typeparam name="T">What the files hold.</typeparam>
public sealed class FileBacked<T> where T : class
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);
    private readonly string[] _paths;
    private readonly Func<T> _load;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private T _value;
    private string _stamp;
    private long _nextCheckTimestamp;

    /// <summary>Loads the value now.</summary>
    /// <exception cref="IOException">A file cannot be read.</exception>
    /// <exception cref="System.Security.Cryptography.CryptographicException">A file is not valid PEM of the expected kind.</exception>
    public FileBacked(IReadOnlyList<string> paths, Func<T> load, ILogger logger)
    {
        _paths = [.. paths];
        _load = load;
        _logger = logger;
        _stamp = Stamp();
        _value = load();
        _nextCheckTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>Raised (from the thread that noticed) after a changed file was loaded.</summary>
    public event Action<T>? Reloaded;

    /// <summary>The value, reloaded first if a file changed since the last check (at most one check a second).</summary>
    public T Current
    {
        get
        {
            var now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (now < Volatile.Read(ref _nextCheckTimestamp)) return Volatile.Read(ref _value);
            lock (_gate)
            {
                if (now < _nextCheckTimestamp) return _value;
                _nextCheckTimestamp = now + (long)(CheckInterval.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
                string stamp;
                try
                {
                    stamp = Stamp();
                }
                catch (IOException exception)
                {
                    _logger.LogWarning("cannot check {Files} for changes ({Error}); keeping the loaded version", string.Join(", ", _paths), exception.Message);
                    return _value;
                }
                if (stamp == _stamp) return _value;
                try
                {
                    var loaded = _load();
                    Volatile.Write(ref _value, loaded);
                    _stamp = stamp;
                    _logger.LogInformation("reloaded {Files} after they changed on disk", string.Join(", ", _paths));
                    Reloaded?.Invoke(loaded);
                }
                catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
                {
                    // Often one file of a pair was replaced and the other not yet: the next check will see both.
                    _logger.LogWarning("cannot reload {Files} ({Error}); keeping the previous version and retrying", string.Join(", ", _paths), exception.Message);
                }
                return _value;
            }
        }
    }

    private string Stamp() => string.Join('|', _paths.Select(path =>
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path} does not exist", path);
        return $"{info.Length}:{info.LastWriteTimeUtc.Ticks}";
    }));
}

/// <summary>A certificate with its private key and the chain sent beside it, loaded from PEM files.</summary>
/// <param name="Leaf">The certificate presented.</param>
/// <param name="Context">The leaf with its intermediates, ready for an <see cref="SslStream"/>.</param>
public sealed record CertificateWithChain(X509Certificate2 Leaf, SslStreamCertificateContext Context)
{
    /// <summary>Loads a PEM certificate file (leaf first, then intermediates) and its PEM key file.</summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">The files are not a certificate and its matching key.</exception>
    public static CertificateWithChain Load(string certFile, string keyFile)
    {
        var leaf = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        var all = new X509Certificate2Collection();
        all.ImportFromPemFile(certFile);
        var intermediates = new X509Certificate2Collection();
        foreach (var certificate in all.Skip(1)) intermediates.Add(certificate);
        return new CertificateWithChain(leaf, SslStreamCertificateContext.Create(leaf, intermediates, offline: true));
    }
}
