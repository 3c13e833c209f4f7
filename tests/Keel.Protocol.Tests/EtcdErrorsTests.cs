using Grpc.Core;

namespace Keel.Protocol.Tests;

/// <summary>The etcd error table and limits hold the exact facts clients depend on.</summary>
public sealed class EtcdErrorsTests
{
    [Theory]
    [InlineData("Compacted", StatusCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted")]
    [InlineData("FutureRevision", StatusCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision")]
    [InlineData("LeaseNotFound", StatusCode.NotFound, "etcdserver: requested lease not found")]
    [InlineData("LeaseTtlTooLarge", StatusCode.OutOfRange, "etcdserver: too large lease TTL")]
    [InlineData("KeyNotProvided", StatusCode.InvalidArgument, "etcdserver: key is not provided")]
    [InlineData("TooManyOperations", StatusCode.InvalidArgument, "etcdserver: too many operations in txn request")]
    [InlineData("DuplicateKey", StatusCode.InvalidArgument, "etcdserver: duplicate key given in txn request")]
    [InlineData("RequestTooLarge", StatusCode.InvalidArgument, "etcdserver: request is too large")]
    [InlineData("NoSpace", StatusCode.ResourceExhausted, "etcdserver: mvcc: database space exceeded")]
    [InlineData("NoLeader", StatusCode.Unavailable, "etcdserver: no leader")]
    [InlineData("Timeout", StatusCode.Unavailable, "etcdserver: request timed out")]
    [InlineData("LeaderChanged", StatusCode.Unavailable, "etcdserver: leader changed")]
    [InlineData("PermissionDenied", StatusCode.PermissionDenied, "etcdserver: permission denied")]
    [InlineData("InvalidAuthToken", StatusCode.Unauthenticated, "etcdserver: invalid auth token")]
    [InlineData("NotLeader", StatusCode.FailedPrecondition, "etcdserver: not leader")]
    [InlineData("MemberNotFound", StatusCode.NotFound, "etcdserver: member not found")]
    public void Error_has_etcds_code_and_exact_text(string field, StatusCode code, string message)
    {
        var error = (EtcdError)typeof(EtcdErrors).GetField(field)!.GetValue(null)!;
        Assert.Equal(code, error.Code);
        Assert.Equal(message, error.Message);
        Assert.Same(error, EtcdErrors.FromMessage(message));

        RpcException exception = error.ToRpcException();
        Assert.Equal(code, exception.StatusCode);
        Assert.Equal(message, exception.Status.Detail);
        Assert.True(error.Matches(exception.Status));
    }

    [Fact]
    public void Every_error_is_listed_once_with_the_etcdserver_prefix()
    {
        // The auth layer's no-password error is etcd's own text without the "etcdserver: " prefix, so it is the one
        // declared error kept out of the table (its own test is below).
        int declared = typeof(EtcdErrors).GetFields().Count(f => f.FieldType == typeof(EtcdError) && f.Name != nameof(EtcdErrors.NoPasswordUser));
        Assert.Equal(declared, EtcdErrors.All.Count);
        Assert.Equal(EtcdErrors.All.Count, EtcdErrors.All.Select(e => e.Message).Distinct(StringComparer.Ordinal).Count());
        Assert.All(EtcdErrors.All, e => Assert.StartsWith("etcdserver: ", e.Message, StringComparison.Ordinal));
        EtcdErrors.AssertInvariants();
    }

    [Fact]
    public void The_no_password_user_error_is_etcds_auth_text_outside_the_etcdserver_table()
    {
        Assert.Equal(StatusCode.Unknown, EtcdErrors.NoPasswordUser.Code);
        Assert.Equal("auth: authentication failed, password was given for no password user", EtcdErrors.NoPasswordUser.Message);
        Assert.DoesNotContain(EtcdErrors.NoPasswordUser, EtcdErrors.All);
        Assert.Null(EtcdErrors.FromMessage(EtcdErrors.NoPasswordUser.Message));
    }

    [Fact]
    public void Unknown_text_and_a_wrong_code_do_not_match()
    {
        Assert.Null(EtcdErrors.FromMessage("etcdserver: no leader "));
        Assert.False(EtcdErrors.NoLeader.Matches(new Status(StatusCode.Internal, "etcdserver: no leader")));
    }

    [Fact]
    public void Limits_are_etcds_defaults()
    {
        Assert.Equal(1_572_864, EtcdErrors.MaxRequestBytes);
        Assert.Equal((int)(1.5 * 1024 * 1024), EtcdErrors.MaxRequestBytes);
        Assert.Equal(1_572_864 + 524_288, EtcdErrors.MaxReceiveMessageBytes);
        Assert.Equal(128, EtcdErrors.MaxTxnOperations);
        Assert.Equal(9_000_000_000L, EtcdErrors.MaxLeaseTtlSeconds);
    }

    [Fact]
    public void Grant_one_returns_two_with_the_default_election_timeout()
    {
        Assert.Equal(2, EtcdErrors.MinimumLeaseTtlSeconds(EtcdErrors.DefaultElectionTimeoutMs));
        Assert.Equal(2, EtcdErrors.GrantedLeaseTtlSeconds(1, EtcdErrors.DefaultElectionTimeoutMs));
        Assert.Equal(60, EtcdErrors.GrantedLeaseTtlSeconds(60, EtcdErrors.DefaultElectionTimeoutMs));
        Assert.Null(EtcdErrors.GrantedLeaseTtlSeconds(9_000_000_001, EtcdErrors.DefaultElectionTimeoutMs));
        Assert.Throws<ArgumentOutOfRangeException>(() => EtcdErrors.MinimumLeaseTtlSeconds(0));
    }
}
