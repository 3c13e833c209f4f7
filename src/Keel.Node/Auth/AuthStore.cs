using System.Collections.Immutable;
using Keel.Core;

namespace Keel.Node.Auth;

/// <summary>Which auth change a replicated <see cref="AuthChange"/> makes (the write RPCs of etcd's Auth service).</summary>
public enum AuthAction : byte
{
    /// <summary>AuthEnable: needs the user root holding the role root.</summary>
    Enable = 1,

    /// <summary>AuthDisable.</summary>
    Disable = 2,

    /// <summary>UserAdd with a password hash, or with no password.</summary>
    UserAdd = 3,

    /// <summary>UserDelete.</summary>
    UserDelete = 4,

    /// <summary>UserChangePassword with a new hash.</summary>
    UserChangePassword = 5,

    /// <summary>UserGrantRole.</summary>
    UserGrantRole = 6,

    /// <summary>UserRevokeRole.</summary>
    UserRevokeRole = 7,

    /// <summary>RoleAdd.</summary>
    RoleAdd = 8,

    /// <summary>RoleDelete (also revokes the role from every user).</summary>
    RoleDelete = 9,

    /// <summary>RoleGrantPermission (replaces the type of a permission on the same range).</summary>
    RoleGrantPermission = 10,

    /// <summary>RoleRevokePermission.</summary>
    RoleRevokePermission = 11,
}

/// <summary>
/// One replicated auth change. Passwords never appear here: the member that received the request hashed them (as etcd
/// does), so the log and snapshots carry only hashes.
/// </summary>
/// <param name="Action">The change.</param>
/// <param name="Name">The user (user actions) or role (role actions).</param>
/// <param name="Role">The role, for UserGrantRole and UserRevokeRole.</param>
/// <param name="PasswordHash">The bcrypt hash, for UserAdd and UserChangePassword (empty with no password).</param>
/// <param name="NoPassword">UserAdd of a certificate-only user.</param>
/// <param name="Permission">The permission granted, or the range revoked (its type is ignored on revoke).</param>
public sealed record AuthChange(AuthAction Action, string Name, string Role = "", string PasswordHash = "", bool NoPassword = false, Permission? Permission = null);

/// <summary>Why an auth change was refused, as etcd's auth errors.</summary>
public enum AuthStatus
{
    /// <summary>Applied.</summary>
    Ok,

    /// <summary>"etcdserver: root user does not exist".</summary>
    RootUserNotExist,

    /// <summary>"etcdserver: root user does not have root role".</summary>
    RootRoleNotExist,

    /// <summary>"etcdserver: user name already exists".</summary>
    UserAlreadyExists,

    /// <summary>"etcdserver: user name is empty".</summary>
    UserEmpty,

    /// <summary>"etcdserver: user name not found".</summary>
    UserNotFound,

    /// <summary>"etcdserver: role name already exists".</summary>
    RoleAlreadyExists,

    /// <summary>"etcdserver: role name not found".</summary>
    RoleNotFound,

    /// <summary>"etcdserver: role name is empty".</summary>
    RoleEmpty,

    /// <summary>"etcdserver: role is not granted to the user".</summary>
    RoleNotGranted,

    /// <summary>"etcdserver: permission is not granted to the role".</summary>
    PermissionNotGranted,

    /// <summary>"etcdserver: invalid auth management": deleting root or revoking its root role while auth is enabled.</summary>
    InvalidAuthManagement,

    /// <summary>"etcdserver: permission not given": a grant without a permission.</summary>
    PermissionNotGiven,

    /// <summary>A malformed change (unknown action or permission type) that a correct member never proposes.</summary>
    Invalid,
}

/// <summary>
/// The pure transition function of the auth store (etcd <c>server/auth/store.go</c>, 3.4 semantics): the same state and
/// change give the same result on every replica; a refused change returns the old state. Never throws.
/// </summary>
public static class AuthStore
{
    /// <summary>Applies <paramref name="change"/> to <paramref name="state"/>: the new state, or the old one and why not.</summary>
    public static (AuthState State, AuthStatus Status) Apply(AuthState state, AuthChange change)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(change);
        var (next, status) = ApplyCore(state, change);
        if (status != AuthStatus.Ok) return (state, status);
        // A no-op (enabling twice, granting a held role) keeps the revision, as etcd does not commit a revision for it.
        return ReferenceEquals(next, state) ? (state, status) : (next with { Revision = state.Revision + 1 }, status);
    }

    private static (AuthState, AuthStatus) ApplyCore(AuthState state, AuthChange change)
    {
        var name = change.Name ?? "";
        switch (change.Action)
        {
            case AuthAction.Enable:
                if (state.Enabled) return (state, AuthStatus.Ok);
                if (!state.Users.TryGetValue(AuthState.RootUser, out var root)) return (state, AuthStatus.RootUserNotExist);
                if (!root.IsRoot) return (state, AuthStatus.RootRoleNotExist);
                return (state with { Enabled = true }, AuthStatus.Ok);
            case AuthAction.Disable:
                return state.Enabled ? (state with { Enabled = false }, AuthStatus.Ok) : (state, AuthStatus.Ok);
            case AuthAction.UserAdd:
                if (name.Length == 0) return (state, AuthStatus.UserEmpty);
                if (state.Users.ContainsKey(name)) return (state, AuthStatus.UserAlreadyExists);
                var added = new AuthUser(name, change.NoPassword ? "" : change.PasswordHash ?? "", ImmutableSortedSet.Create<string>(StringComparer.Ordinal), change.NoPassword);
                return (state with { Users = state.Users.Add(name, added) }, AuthStatus.Ok);
            case AuthAction.UserDelete:
                if (state.Enabled && name == AuthState.RootUser) return (state, AuthStatus.InvalidAuthManagement);
                if (!state.Users.ContainsKey(name)) return (state, AuthStatus.UserNotFound);
                return (state with { Users = state.Users.Remove(name) }, AuthStatus.Ok);
            case AuthAction.UserChangePassword:
                if (!state.Users.TryGetValue(name, out var changing)) return (state, AuthStatus.UserNotFound);
                return (state with { Users = state.Users.SetItem(name, changing with { PasswordHash = change.PasswordHash ?? "", NoPassword = false }) }, AuthStatus.Ok);
            case AuthAction.UserGrantRole:
                if (!state.Users.TryGetValue(name, out var grantee)) return (state, AuthStatus.UserNotFound);
                // The root role need not exist as a role to be granted (etcdctl auth enable relies on it).
                if (change.Role != AuthState.RootRole && !state.Roles.ContainsKey(change.Role)) return (state, AuthStatus.RoleNotFound);
                if (grantee.Roles.Contains(change.Role)) return (state, AuthStatus.Ok);
                return (state with { Users = state.Users.SetItem(name, grantee with { Roles = grantee.Roles.Add(change.Role) }) }, AuthStatus.Ok);
            case AuthAction.UserRevokeRole:
                if (state.Enabled && name == AuthState.RootUser && change.Role == AuthState.RootRole) return (state, AuthStatus.InvalidAuthManagement);
                if (!state.Users.TryGetValue(name, out var revokee)) return (state, AuthStatus.UserNotFound);
                if (!revokee.Roles.Contains(change.Role)) return (state, AuthStatus.RoleNotGranted);
                return (state with { Users = state.Users.SetItem(name, revokee with { Roles = revokee.Roles.Remove(change.Role) }) }, AuthStatus.Ok);
            case AuthAction.RoleAdd:
                if (name.Length == 0) return (state, AuthStatus.RoleEmpty);
                if (state.Roles.ContainsKey(name)) return (state, AuthStatus.RoleAlreadyExists);
                return (state with { Roles = state.Roles.Add(name, new AuthRole(name, [])) }, AuthStatus.Ok);
            case AuthAction.RoleDelete:
                if (state.Enabled && name == AuthState.RootRole) return (state, AuthStatus.InvalidAuthManagement);
                if (!state.Roles.ContainsKey(name)) return (state, AuthStatus.RoleNotFound);
                var users = state.Users;
                foreach (var user in state.Users.Values)
                    if (user.Roles.Contains(name)) users = users.SetItem(user.Name, user with { Roles = user.Roles.Remove(name) });
                return (state with { Roles = state.Roles.Remove(name), Users = users }, AuthStatus.Ok);
            case AuthAction.RoleGrantPermission:
                if (change.Permission is not { } granted) return (state, AuthStatus.PermissionNotGiven);
                if (!Enum.IsDefined(granted.Type)) return (state, AuthStatus.Invalid);
                if (!state.Roles.TryGetValue(name, out var role)) return (state, AuthStatus.RoleNotFound);
                var index = role.Permissions.FindIndex(p => p.SameRange(granted.Key, granted.RangeEnd));
                var permissions = index >= 0
                    ? role.Permissions.SetItem(index, granted)
                    : role.Permissions.Add(granted).Sort(ComparePermissions);
                return (state with { Roles = state.Roles.SetItem(name, role with { Permissions = permissions }) }, AuthStatus.Ok);
            case AuthAction.RoleRevokePermission:
                if (change.Permission is not { } revoked) return (state, AuthStatus.PermissionNotGiven);
                if (!state.Roles.TryGetValue(name, out var holder)) return (state, AuthStatus.RoleNotFound);
                var at = holder.Permissions.FindIndex(p => p.SameRange(revoked.Key, revoked.RangeEnd));
                if (at < 0) return (state, AuthStatus.PermissionNotGranted);
                return (state with { Roles = state.Roles.SetItem(name, holder with { Permissions = holder.Permissions.RemoveAt(at) }) }, AuthStatus.Ok);
            default:
                return (state, AuthStatus.Invalid);
        }
    }

    private static int ComparePermissions(Permission a, Permission b)
    {
        var byKey = ByteKeyComparer.Instance.Compare(a.Key, b.Key);
        return byKey != 0 ? byKey : ByteKeyComparer.Instance.Compare(a.RangeEnd, b.RangeEnd);
    }
}
