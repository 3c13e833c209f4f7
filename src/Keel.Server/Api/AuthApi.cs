using Google.Protobuf;
using Grpc.Core;
using Keel.Node;
using Keel.Node.Auth;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Auth;
using Keel.Server.Hosting;
using EtcdPermission = Keel.Protocol.Etcd.Authpb.Permission;

namespace Keel.Server.Api;

/// <summary>
/// etcd's Auth service (<c>etcdserver/api/v3rpc/auth.go</c>, <c>etcdserver/v3_server.go</c>, 3.4 semantics). Changes go
/// through the log as <see cref="KvCommandKind.Auth"/>; a password is hashed with bcrypt (<c>--bcrypt-cost</c>) on this
/// member before proposing, so neither the log nor snapshots ever hold it. Reads (UserGet, RoleList...) wait for a
/// ReadIndex barrier, then answer from the applied state. Auth management needs the root role while auth is enabled,
/// except that a user may read itself and the roles it holds (etcd's authApplierV3).
/// </summary>
internal sealed class AuthApi(NodeHost host, AuthGate gate) : Keel.Protocol.Etcd.Etcdserverpb.Auth.AuthBase
{
    public override async Task<AuthEnableResponse> AuthEnable(AuthEnableRequest request, ServerCallContext context)
    {
        // etcd does not check the caller: while auth is disabled anyone may enable it; once enabled it is a no-op.
        await Change(new AuthChange(AuthAction.Enable, ""));
        return new AuthEnableResponse { Header = Header() };
    }

    public override async Task<AuthDisableResponse> AuthDisable(AuthDisableRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.Disable, ""));
        return new AuthDisableResponse { Header = Header() };
    }

    public override async Task<AuthStatusResponse> AuthStatus(AuthStatusRequest request, ServerCallContext context)
    {
        await host.BarrierAsync();
        var state = gate.State;
        return new AuthStatusResponse { Header = Header(), Enabled = state.Enabled, AuthRevision = state.Revision };
    }

    public override async Task<AuthenticateResponse> Authenticate(AuthenticateRequest request, ServerCallContext context)
    {
        await host.BarrierAsync();
        var state = gate.State;
        if (!state.Enabled) throw EtcdErrors.AuthNotEnabled.ToRpcException();
        if (state.Users.TryGetValue(request.Name, out var certificateUser) && certificateUser.NoPassword)
            throw EtcdErrors.NoPasswordUser.ToRpcException();
        if (!state.Users.TryGetValue(request.Name, out var user) || user.PasswordHash.Length == 0
            || !await Task.Run(() => PasswordHasher.Verify(request.Password, user.PasswordHash)))
            throw EtcdErrors.AuthFailed.ToRpcException();
        var token = gate.Tokens.Assign(user.Name, state.Revision)
            ?? throw (gate.Tokens is SimpleTokens ? EtcdErrors.TooManyRequests.ToRpcException()
                : new RpcException(new Status(StatusCode.FailedPrecondition, "keel: this member has no private key to sign tokens (--auth-token jwt,priv-key=...)")));
        return new AuthenticateResponse { Header = Header(), Token = token };
    }

    public override async Task<AuthUserAddResponse> UserAdd(AuthUserAddRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var noPassword = request.Options?.NoPassword == true;
        var hash = noPassword ? "" : await HashAsync(request.Password, request.HashedPassword);
        await Change(new AuthChange(AuthAction.UserAdd, request.Name, PasswordHash: hash, NoPassword: noPassword));
        return new AuthUserAddResponse { Header = Header() };
    }

    public override async Task<AuthUserGetResponse> UserGet(AuthUserGetRequest request, ServerCallContext context)
    {
        await host.BarrierAsync();
        var state = gate.State;
        if (state.CheckAdmin(gate.UserOf(context)) is var check and not AuthCheck.Allowed && gate.UserOf(context) != request.Name) AuthGate.Throw(check);
        if (!state.Users.TryGetValue(request.Name, out var user)) throw Errors.ToRpc(KeelError.FromAuth(Node.Auth.AuthStatus.UserNotFound));
        var response = new AuthUserGetResponse { Header = Header() };
        response.Roles.AddRange(user.Roles);
        return response;
    }

    public override async Task<AuthUserListResponse> UserList(AuthUserListRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await host.BarrierAsync();
        var response = new AuthUserListResponse { Header = Header() };
        response.Users.AddRange(gate.State.Users.Keys);
        return response;
    }

    public override async Task<AuthUserDeleteResponse> UserDelete(AuthUserDeleteRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.UserDelete, request.Name));
        gate.Tokens.InvalidateUser(request.Name);
        return new AuthUserDeleteResponse { Header = Header() };
    }

    public override async Task<AuthUserChangePasswordResponse> UserChangePassword(AuthUserChangePasswordRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var hash = await HashAsync(request.Password, request.HashedPassword);
        await Change(new AuthChange(AuthAction.UserChangePassword, request.Name, PasswordHash: hash));
        gate.Tokens.InvalidateUser(request.Name);
        return new AuthUserChangePasswordResponse { Header = Header() };
    }

    public override async Task<AuthUserGrantRoleResponse> UserGrantRole(AuthUserGrantRoleRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.UserGrantRole, request.User, request.Role));
        return new AuthUserGrantRoleResponse { Header = Header() };
    }

    public override async Task<AuthUserRevokeRoleResponse> UserRevokeRole(AuthUserRevokeRoleRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.UserRevokeRole, request.Name, request.Role));
        return new AuthUserRevokeRoleResponse { Header = Header() };
    }

    public override async Task<AuthRoleAddResponse> RoleAdd(AuthRoleAddRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.RoleAdd, request.Name));
        return new AuthRoleAddResponse { Header = Header() };
    }

    public override async Task<AuthRoleGetResponse> RoleGet(AuthRoleGetRequest request, ServerCallContext context)
    {
        await host.BarrierAsync();
        var state = gate.State;
        var caller = gate.UserOf(context);
        if (state.CheckAdmin(caller) is var check and not AuthCheck.Allowed && !state.HasRole(caller, request.Role)) AuthGate.Throw(check);
        var response = new AuthRoleGetResponse { Header = Header() };
        if (request.Role == AuthState.RootRole && !state.Roles.ContainsKey(request.Role))
        {
            // etcd answers root with its implicit permission on every key.
            response.Perm.Add(new EtcdPermission { PermType = EtcdPermission.Types.Type.Readwrite, Key = ByteString.Empty, RangeEnd = ByteString.CopyFrom(0) });
            return response;
        }
        if (!state.Roles.TryGetValue(request.Role, out var role)) throw Errors.ToRpc(KeelError.FromAuth(Node.Auth.AuthStatus.RoleNotFound));
        foreach (var permission in role.Permissions)
            response.Perm.Add(new EtcdPermission
            {
                PermType = (EtcdPermission.Types.Type)(int)permission.Type,
                Key = ByteString.CopyFrom(permission.Key),
                RangeEnd = ByteString.CopyFrom(permission.RangeEnd),
            });
        return response;
    }

    public override async Task<AuthRoleListResponse> RoleList(AuthRoleListRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await host.BarrierAsync();
        var response = new AuthRoleListResponse { Header = Header() };
        response.Roles.AddRange(gate.State.Roles.Keys);
        return response;
    }

    public override async Task<AuthRoleDeleteResponse> RoleDelete(AuthRoleDeleteRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.RoleDelete, request.Role));
        return new AuthRoleDeleteResponse { Header = Header() };
    }

    public override async Task<AuthRoleGrantPermissionResponse> RoleGrantPermission(AuthRoleGrantPermissionRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        if (request.Perm is not { } perm) throw Errors.ToRpc(KeelError.FromAuth(Node.Auth.AuthStatus.PermissionNotGiven));
        if (!Enum.IsDefined((PermissionType)(int)perm.PermType))
            throw Errors.InvalidArgument($"keel: invalid permission type {(int)perm.PermType} (READ, WRITE or READWRITE: 0 to 2)");
        await Change(new AuthChange(AuthAction.RoleGrantPermission, request.Name,
            Permission: new Permission((PermissionType)(int)perm.PermType, perm.Key.ToByteArray(), perm.RangeEnd.ToByteArray())));
        return new AuthRoleGrantPermissionResponse { Header = Header() };
    }

    public override async Task<AuthRoleRevokePermissionResponse> RoleRevokePermission(AuthRoleRevokePermissionRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        await Change(new AuthChange(AuthAction.RoleRevokePermission, request.Role,
            Permission: new Permission(PermissionType.Read, request.Key.ToByteArray(), request.RangeEnd.ToByteArray())));
        return new AuthRoleRevokePermissionResponse { Header = Header() };
    }

    private async Task Change(AuthChange change)
    {
        var result = await host.WriteAsync(KvCommand.OfAuth(change));
        Errors.ThrowIfFailed(result);
    }

    // bcrypt at the configured cost, off the request thread (a cost of 10 takes tens of milliseconds). A client that
    // hashed the password itself (etcd 3.5's hashedPassword) sends a bcrypt hash, which is stored as it is.
    private Task<string> HashAsync(string password, string hashedPassword)
    {
        if (password.Length == 0 && hashedPassword.Length > 0)
        {
            if (!PasswordHasher.IsBcryptHash(hashedPassword)) throw Errors.InvalidArgument("keel: hashedPassword is not a bcrypt hash");
            return Task.FromResult(hashedPassword);
        }
        return Task.Run(() => PasswordHasher.Hash(password, host.Options.BcryptCost));
    }

    private ResponseHeader Header() => host.Header(host.Status.Revision);
}
