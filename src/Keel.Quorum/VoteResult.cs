namespace Keel.Quorum;

/// <summary>
/// The outcome of counting votes against a quorum configuration, as etcd <c>quorum.VoteResult</c>
/// (etcd-io/raft <c>quorum/quorum.go</c>).
/// </summary>
public enum VoteResult
{
    /// <summary>Neither won nor lost yet: the outstanding votes could still go either way.</summary>
    Pending,

    /// <summary>Enough rejections that a quorum of grants can no longer be reached.</summary>
    Lost,

    /// <summary>A quorum has granted the vote.</summary>
    Won,
}
