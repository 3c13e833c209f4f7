using System.Collections.Immutable;
using System.Text;
using Keel.Core;

namespace Keel.Node.Auth;

/// <summary>What a permission allows, with etcd's numbers (<c>authpb.Permission.Type</c>).</summary>
public enum PermissionType : byte
{
    /// <summary>Range reads, watches and transaction compares.</summary>
    Read = 0,

    /// <summary>Puts and deletes.</summary>
    Write = 1,

    /// <summary>Both.</summary>
    ReadWrite = 2,
}

/// <summary>
/// A permission of a role on one key (<see cref="RangeEnd"/> empty) or on <c>[Key, RangeEnd)</c>; a range end of the
/// single byte 0 means every key from <see cref="Key"/> on (etcd's "from key"), so a prefix is <c>[p, p+1)</c>.
/// </summary>
/// <param name="Type">What it allows.</param>
/// <param name="Key">The key, or the start of the range.</param>
/// <param name="RangeEnd">Empty for one key, otherwise the exclusive end.</param>
public sealed record Permission(PermissionType Type, byte[] Key, byte[] RangeEnd)
{
    /// <summary>True when this permission names the same key or range as <paramref name="key"/>/<paramref name="rangeEnd"/>.</summary>
    public bool SameRange(ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd) => Key.AsSpan().SequenceEqual(key) && RangeEnd.AsSpan().SequenceEqual(rangeEnd);

    /// <summary>True when the permission allows reads.</summary>
    public bool AllowsRead => Type is PermissionType.Read or PermissionType.ReadWrite;

    /// <summary>True when the permission allows writes.</summary>
    public bool AllowsWrite => Type is PermissionType.Write or PermissionType.ReadWrite;
}

/// <summary>
/// A user: its password hash (a bcrypt string made by the member that received the request, never the password),
/// its roles in name order, and whether it may only authenticate with a client certificate (<c>--no-password</c>).
/// </summary>
/// <param name="Name">The user name.</param>
/// <param name="PasswordHash">The bcrypt hash, empty for a no-password user.</param>
/// <param name="Roles">The granted roles.</param>
/// <param name="NoPassword">True for a certificate-only user (etcd's <c>options.no_password</c>).</param>
public sealed record AuthUser(string Name, string PasswordHash, ImmutableSortedSet<string> Roles, bool NoPassword)
{
    /// <summary>True when the user holds the root role (every permission, and the admin calls).</summary>
    public bool IsRoot => Roles.Contains(AuthState.RootRole);
}

/// <summary>A role and its permissions, sorted by key then range end as etcd keeps them.</summary>
/// <param name="Name">The role name.</param>
/// <param name="Permissions">The permissions.</param>
public sealed record AuthRole(string Name, ImmutableList<Permission> Permissions);

/// <summary>
/// The replicated auth store of etcd (<c>server/auth/store.go</c>) as an immutable value: every change makes a new
/// state (<see cref="AuthStore.Apply"/>), so the server can read the current one from any thread while the node loop
/// applies the next. <see cref="Revision"/> counts the changes, as etcd's auth revision.
/// </summary>
/// <param name="Enabled">True when requests are checked.</param>
/// <param name="Revision">Bumped by every change that succeeded.</param>
/// <param name="Users">Users by name.</param>
/// <param name="Roles">Roles by name.</param>
public sealed record AuthState(bool Enabled, ulong Revision, ImmutableSortedDictionary<string, AuthUser> Users, ImmutableSortedDictionary<string, AuthRole> Roles)
{
    /// <summary>The user <c>auth enable</c> requires.</summary>
    public const string RootUser = "root";

    /// <summary>The role that allows everything.</summary>
    public const string RootRole = "root";

    /// <summary>The state of a new cluster: disabled, no users, no roles, revision 1 (etcd starts its auth revision at 1).</summary>
    public static AuthState Empty { get; } = new(false, 1,
        ImmutableSortedDictionary.Create<string, AuthUser>(StringComparer.Ordinal), ImmutableSortedDictionary.Create<string, AuthRole>(StringComparer.Ordinal));

    /// <summary>
    /// Whether <paramref name="user"/> may read (or write) <paramref name="key"/> (<paramref name="rangeEnd"/> empty) or
    /// every key of <c>[key, rangeEnd)</c> (etcd's isRangeOpPermitted): always when auth is disabled; "user name is
    /// empty" for a request without a user; permission denied for an unknown user or one whose roles' permissions do
    /// not cover the whole range; root may do anything.
    /// </summary>
    public AuthCheck CheckRange(string? user, ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd, bool write)
    {
        if (!Enabled) return AuthCheck.Allowed;
        if (string.IsNullOrEmpty(user)) return AuthCheck.UserEmpty;
        if (!Users.TryGetValue(user, out var found)) return AuthCheck.PermissionDenied;
        if (found.IsRoot) return AuthCheck.Allowed;
        var intervals = new List<(byte[] Start, byte[]? End)>();
        foreach (var roleName in found.Roles)
        {
            if (!Roles.TryGetValue(roleName, out var role)) continue;
            foreach (var permission in role.Permissions)
                if (write ? permission.AllowsWrite : permission.AllowsRead) intervals.Add((permission.Key, EndOf(permission.Key, permission.RangeEnd)));
        }
        return Covers(intervals, key, rangeEnd) ? AuthCheck.Allowed : AuthCheck.PermissionDenied;
    }

    /// <summary>etcd's IsAdminPermitted: the root role is required while auth is enabled.</summary>
    public AuthCheck CheckAdmin(string? user)
    {
        if (!Enabled) return AuthCheck.Allowed;
        if (string.IsNullOrEmpty(user)) return AuthCheck.UserEmpty;
        if (!Users.TryGetValue(user, out var found)) return AuthCheck.UserNotFound;
        return found.IsRoot ? AuthCheck.Allowed : AuthCheck.PermissionDenied;
    }

    /// <summary>True when <paramref name="user"/> exists and holds <paramref name="role"/> (etcd's HasRole).</summary>
    public bool HasRole(string? user, string role) => user is not null && Users.TryGetValue(user, out var found) && found.Roles.Contains(role);

    // The exclusive end of a permission: the key's successor for one key, null for "to the end of the key space".
    private static byte[]? EndOf(byte[] key, byte[] rangeEnd)
    {
        if (rangeEnd.Length == 0) return [.. key, 0];
        if (rangeEnd is [0]) return null;
        return rangeEnd;
    }

    // The requested keys lie in the union of the intervals: walk the intervals sorted by start, extending the covered
    // prefix of the request while an interval starts inside it.
    private static bool Covers(List<(byte[] Start, byte[]? End)> intervals, ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd)
    {
        byte[] wantStart = key.ToArray();
        byte[]? wantEnd = rangeEnd.Length == 0 ? [.. wantStart, 0] : rangeEnd is [0] ? null : rangeEnd.ToArray();
        // An empty request range ([a, b) with b <= a) reads nothing; etcd still requires a covering permission of the
        // start key, which the loop below checks.
        intervals.Sort((a, b) => ByteKeyComparer.Instance.Compare(a.Start, b.Start));
        var covered = wantStart;
        foreach (var (start, end) in intervals)
        {
            if (ByteKeyComparer.Instance.Compare(start, covered) > 0) break;
            if (end is null) return true;
            if (ByteKeyComparer.Instance.Compare(end, covered) > 0) covered = end;
            if (wantEnd is not null && ByteKeyComparer.Instance.Compare(covered, wantEnd) >= 0) return true;
        }
        return false;
    }

    /// <summary>Writes the state (sorted, so equal states give equal bytes).</summary>
    public void WriteTo(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(Enabled);
        writer.Write(Revision);
        writer.Write(Users.Count);
        foreach (var user in Users.Values)
        {
            writer.Write(user.Name);
            writer.Write(user.PasswordHash);
            writer.Write(user.NoPassword);
            writer.Write(user.Roles.Count);
            foreach (var role in user.Roles) writer.Write(role);
        }
        writer.Write(Roles.Count);
        foreach (var role in Roles.Values)
        {
            writer.Write(role.Name);
            writer.Write(role.Permissions.Count);
            foreach (var permission in role.Permissions)
            {
                writer.Write((byte)permission.Type);
                writer.Write(permission.Key.Length);
                writer.Write(permission.Key);
                writer.Write(permission.RangeEnd.Length);
                writer.Write(permission.RangeEnd);
            }
        }
    }

    /// <summary>Reads <see cref="WriteTo"/>'s bytes, checking every count and enum.</summary>
    /// <exception cref="InvalidCommandException">The bytes are not an auth state.</exception>
    public static AuthState ReadFrom(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var enabled = reader.ReadBoolean();
        var revision = reader.ReadUInt64();
        var users = ImmutableSortedDictionary.CreateBuilder<string, AuthUser>(StringComparer.Ordinal);
        for (var i = Count(reader, 3); i > 0; i--)
        {
            var name = reader.ReadString();
            var hash = reader.ReadString();
            var noPassword = reader.ReadBoolean();
            var roles = ImmutableSortedSet.CreateBuilder<string>(StringComparer.Ordinal);
            for (var j = Count(reader, 1); j > 0; j--) roles.Add(reader.ReadString());
            if (!users.TryAdd(name, new AuthUser(name, hash, roles.ToImmutable(), noPassword))) throw new InvalidCommandException($"user {name} twice in an auth state");
        }
        var rolesByName = ImmutableSortedDictionary.CreateBuilder<string, AuthRole>(StringComparer.Ordinal);
        for (var i = Count(reader, 2); i > 0; i--)
        {
            var name = reader.ReadString();
            var permissions = ImmutableList.CreateBuilder<Permission>();
            for (var j = Count(reader, 9); j > 0; j--)
            {
                var type = (PermissionType)reader.ReadByte();
                if (!Enum.IsDefined(type)) throw new InvalidCommandException($"unknown permission type {(int)type} in an auth state");
                permissions.Add(new Permission(type, reader.ReadBytes(Count(reader, 1)), reader.ReadBytes(Count(reader, 1))));
            }
            if (!rolesByName.TryAdd(name, new AuthRole(name, permissions.ToImmutable()))) throw new InvalidCommandException($"role {name} twice in an auth state");
        }
        return new AuthState(enabled, revision, users.ToImmutable(), rolesByName.ToImmutable());
    }

    private static int Count(BinaryReader reader, int bytesPerItem)
    {
        var count = reader.ReadInt32();
        if (count < 0 || (long)count * bytesPerItem > reader.BaseStream.Length - reader.BaseStream.Position)
            throw new InvalidCommandException($"count {count} out of range in an auth state");
        return count;
    }

    /// <summary>A short description for logs.</summary>
    public override string ToString() =>
        new StringBuilder().Append("auth ").Append(Enabled ? "enabled" : "disabled").Append(", revision ").Append(Revision)
            .Append(", ").Append(Users.Count).Append(" users, ").Append(Roles.Count).Append(" roles").ToString();
}

/// <summary>The outcome of a permission check (mapped to etcd's errors by the server).</summary>
public enum AuthCheck
{
    /// <summary>Allowed.</summary>
    Allowed,

    /// <summary>"etcdserver: user name is empty": auth is enabled and the request names no user.</summary>
    UserEmpty,

    /// <summary>"etcdserver: user name not found".</summary>
    UserNotFound,

    /// <summary>"etcdserver: permission denied".</summary>
    PermissionDenied,
}
