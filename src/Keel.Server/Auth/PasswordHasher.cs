namespace Keel.Server.Auth;

/// <summary>
/// Password hashes as etcd makes them: bcrypt (BCrypt.Net-Next, the <c>$2a$</c>/<c>$2b$</c> format Go's
/// <c>golang.org/x/crypto/bcrypt</c> reads too) with a cost from <c>--bcrypt-cost</c>. bcrypt is salted and slow by
/// design; like etcd, only the first 72 bytes of a password count.
/// </summary>
public static class PasswordHasher
{
    /// <summary>The lowest cost bcrypt accepts (etcd's bcrypt.MinCost).</summary>
    public const int MinCost = 4;

    /// <summary>The highest cost (etcd's bcrypt.MaxCost).</summary>
    public const int MaxCost = 31;

    /// <summary>A salted bcrypt hash of <paramref name="password"/> at <paramref name="cost"/>.</summary>
    public static string Hash(string password, int cost)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentOutOfRangeException.ThrowIfLessThan(cost, MinCost);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cost, MaxCost);
        return BCrypt.Net.BCrypt.HashPassword(password, cost);
    }

    /// <summary>True when <paramref name="password"/> matches <paramref name="hash"/>; false for a malformed hash.</summary>
    public static bool Verify(string password, string hash)
    {
        try
        {
            return BCrypt.Net.BCrypt.Verify(password, hash);
        }
        catch (BCrypt.Net.SaltParseException)
        {
            return false;
        }
    }

    /// <summary>True when <paramref name="hash"/> has bcrypt's shape ($2a$, $2b$ or $2y$, a cost, 53 characters of salt and hash).</summary>
    public static bool IsBcryptHash(string hash) =>
        hash.Length == 60 && hash.StartsWith("$2", StringComparison.Ordinal) && hash[3] == '$' && hash[6] == '$';
}
