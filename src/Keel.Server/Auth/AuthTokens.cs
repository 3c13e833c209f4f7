using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Keel.Server.Auth;

/// <summary>What a valid token says: who it was issued to, at which auth revision.</summary>
/// <param name="User">The user name.</param>
/// <param name="Revision">The auth revision when it was issued.</param>
public readonly record struct TokenInfo(string User, ulong Revision);

/// <summary>Issues and checks the tokens Authenticate returns (etcd's TokenProvider: simple or jwt).</summary>
public interface IAuthTokens
{
    /// <summary>A new token for <paramref name="user"/>, or null when this member cannot issue one (JWT without a private key, or the table is full).</summary>
    string? Assign(string user, ulong revision);

    /// <summary>The token's user, or null when it is unknown, expired or forged.</summary>
    TokenInfo? Resolve(string token);

    /// <summary>Forgets every token of <paramref name="user"/> (deleted, or its password changed), where the provider keeps them.</summary>
    void InvalidateUser(string user);

    /// <summary>Parses <c>--auth-token</c> (etcd's syntax) into a provider.</summary>
    /// <exception cref="ArgumentException">Unknown kind, a missing or unreadable key, or an unknown sign method.</exception>
    public static IAuthTokens Create(ServerOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        var parts = options.AuthToken.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[0] == "simple")
            return new SimpleTokens(TimeSpan.FromSeconds(options.AuthTokenTtlSeconds > 0 ? options.AuthTokenTtlSeconds : 300), time);
        if (parts[0] != "jwt") throw new ArgumentException($"--auth-token: unknown token type '{parts[0]}' (simple or jwt)");
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in parts.Skip(1))
        {
            var equals = part.IndexOf('=');
            if (equals <= 0) throw new ArgumentException($"--auth-token: '{part}' is not name=value");
            settings[part[..equals]] = part[(equals + 1)..];
        }
        return JwtTokens.FromSettings(settings, time);
    }
}

/// <summary>
/// etcd's simple tokens: 16 random letters, a dot and a counter, kept in this member's memory only (a client that moves
/// to another member authenticates again, which etcd's clients do on "invalid auth token"). A token lives
/// <c>--auth-token-ttl</c> after its last use. At most <see cref="MaxTokens"/> live tokens: when full, expired ones are
/// swept, and if none expired Authenticate fails with "etcdserver: too many requests".
/// </summary>
public sealed class SimpleTokens(TimeSpan ttl, TimeProvider time) : IAuthTokens
{
    /// <summary>The bound on live tokens per member.</summary>
    public const int MaxTokens = 65_536;

    private const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private readonly ConcurrentDictionary<string, (string User, ulong Revision, long ExpiresAtTicks)> _tokens = new(StringComparer.Ordinal);
    private long _counter;

    /// <summary>Live tokens (tests and metrics).</summary>
    public int Count => _tokens.Count;

    /// <inheritdoc/>
    public string? Assign(string user, ulong revision)
    {
        var now = time.GetUtcNow().UtcTicks;
        if (_tokens.Count >= MaxTokens)
        {
            foreach (var (token, entry) in _tokens)
                if (entry.ExpiresAtTicks <= now) _tokens.TryRemove(token, out _);
            if (_tokens.Count >= MaxTokens) return null;
        }
        var text = RandomNumberGenerator.GetString(Letters, 16) + "." + Interlocked.Increment(ref _counter).ToString(System.Globalization.CultureInfo.InvariantCulture);
        _tokens[text] = (user, revision, now + ttl.Ticks);
        return text;
    }

    /// <inheritdoc/>
    public TokenInfo? Resolve(string token)
    {
        if (!_tokens.TryGetValue(token, out var entry)) return null;
        var now = time.GetUtcNow().UtcTicks;
        if (entry.ExpiresAtTicks <= now)
        {
            _tokens.TryRemove(token, out _);
            return null;
        }
        // Each use extends the token's life (etcd's simpleTokenTTLKeeper resets on use).
        _tokens.TryUpdate(token, entry with { ExpiresAtTicks = now + ttl.Ticks }, entry);
        return new TokenInfo(entry.User, entry.Revision);
    }

    /// <inheritdoc/>
    public void InvalidateUser(string user)
    {
        foreach (var (token, entry) in _tokens)
            if (entry.User == user) _tokens.TryRemove(token, out _);
    }
}

/// <summary>
/// etcd's JWT tokens (<c>--auth-token jwt,pub-key=…,priv-key=…,sign-method=RS256|ES256,ttl=5m</c>): claims
/// <c>username</c>, <c>revision</c> and <c>exp</c>, signed with the private key; any member holding the public key
/// verifies them, so a token issued by one member works on every member. A member with only the public key verifies but
/// does not issue. Tokens cannot be revoked before they expire (as in etcd); a deleted user's token no longer passes the
/// permission checks, which look the user up.
/// </summary>
public sealed class JwtTokens : IAuthTokens
{
    private readonly AsymmetricAlgorithm? _signer;
    private readonly AsymmetricAlgorithm _verifier;
    private readonly string _method;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;

    private JwtTokens(string method, AsymmetricAlgorithm verifier, AsymmetricAlgorithm? signer, TimeSpan ttl, TimeProvider time)
    {
        _method = method;
        _verifier = verifier;
        _signer = signer;
        _ttl = ttl;
        _time = time;
    }

    internal static JwtTokens FromSettings(IReadOnlyDictionary<string, string> settings, TimeProvider time)
    {
        var method = settings.GetValueOrDefault("sign-method") ?? throw new ArgumentException("--auth-token jwt needs sign-method=RS256 or ES256");
        if (method is not ("RS256" or "ES256")) throw new ArgumentException($"--auth-token: sign-method {method} is not supported (RS256 or ES256)");
        var ttl = settings.TryGetValue("ttl", out var ttlText) ? ParseDuration(ttlText) : TimeSpan.FromMinutes(5);
        var publicPath = settings.GetValueOrDefault("pub-key");
        var privatePath = settings.GetValueOrDefault("priv-key");
        if (publicPath is null && privatePath is null) throw new ArgumentException("--auth-token jwt needs pub-key=PATH (and priv-key=PATH to issue tokens)");
        AsymmetricAlgorithm Load(string path)
        {
            string pem;
            try
            {
                pem = File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"--auth-token: cannot read {path}: {e.Message}");
            }
            try
            {
                AsymmetricAlgorithm key = method == "RS256" ? RSA.Create() : ECDsa.Create();
                key.ImportFromPem(pem);
                return key;
            }
            catch (Exception e) when (e is ArgumentException or CryptographicException)
            {
                throw new ArgumentException($"--auth-token: {path} is not a PEM {(method == "RS256" ? "RSA" : "EC")} key: {e.Message}");
            }
        }
        var signer = privatePath is null ? null : Load(privatePath);
        var verifier = publicPath is null ? signer! : Load(publicPath);
        return new JwtTokens(method, verifier, signer, ttl, time);
    }

    private static TimeSpan ParseDuration(string text)
    {
        // Go durations as etcd takes them: 300s, 5m, 1h.
        if (text.Length >= 2 && long.TryParse(text[..^1], out var amount) && amount > 0)
        {
            switch (text[^1])
            {
                case 's': return TimeSpan.FromSeconds(amount);
                case 'm': return TimeSpan.FromMinutes(amount);
                case 'h': return TimeSpan.FromHours(amount);
            }
        }
        throw new ArgumentException($"--auth-token: ttl={text} is not a duration like 300s, 5m or 1h");
    }

    /// <inheritdoc/>
    public string? Assign(string user, ulong revision)
    {
        if (_signer is null) return null;
        var header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = _method, ["typ"] = "JWT" }));
        var exp = _time.GetUtcNow().Add(_ttl).ToUnixTimeSeconds();
        var claims = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object> { ["username"] = user, ["revision"] = revision, ["exp"] = exp }));
        var signingInput = header + "." + claims;
        var signature = Sign(Encoding.ASCII.GetBytes(signingInput));
        return signingInput + "." + Base64Url(signature);
    }

    /// <inheritdoc/>
    public TokenInfo? Resolve(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3) return null;
        try
        {
            using var header = JsonDocument.Parse(FromBase64Url(parts[0]));
            if (!header.RootElement.TryGetProperty("alg", out var alg) || alg.GetString() != _method) return null;
            if (!Verify(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), FromBase64Url(parts[2]))) return null;
            using var claims = JsonDocument.Parse(FromBase64Url(parts[1]));
            var root = claims.RootElement;
            var user = root.GetProperty("username").GetString();
            var exp = root.GetProperty("exp").GetInt64();
            var revision = root.TryGetProperty("revision", out var rev) ? rev.GetUInt64() : 0;
            if (string.IsNullOrEmpty(user) || exp <= _time.GetUtcNow().ToUnixTimeSeconds()) return null;
            return new TokenInfo(user, revision);
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or KeyNotFoundException or CryptographicException)
        {
            return null;
        }
    }

    /// <inheritdoc/>
    public void InvalidateUser(string user)
    {
        // Signed tokens are not kept: they run out at their expiry.
    }

    private byte[] Sign(byte[] data) => _signer switch
    {
        RSA rsa => rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
        ECDsa ec => ec.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
        _ => throw new InvalidOperationException("no signing key"),
    };

    private bool Verify(byte[] data, byte[] signature) => _verifier switch
    {
        RSA rsa => rsa.VerifyData(data, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
        ECDsa ec => ec.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
        _ => false,
    };

    private static string Base64Url(byte[] data) => Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", 0 => "", _ => throw new FormatException("bad base64url length") };
        return Convert.FromBase64String(padded);
    }
}
