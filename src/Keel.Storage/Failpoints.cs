namespace Keel.Storage;

/// <summary>
/// Failure injection for tests on real processes, in the manner of etcd's gofail failpoints: off unless an environment
/// variable names one, read once per process. <c>KEEL_FAILPOINT_FDATASYNC_EIO_AFTER=N</c> makes every fdatasync after
/// the first N fail with EIO, as a dying disk does, so a test can prove that a member whose fsync fails stops loudly.
/// </summary>
public static class Failpoints
{
    /// <summary>The environment variable of the fdatasync failpoint.</summary>
    public const string FdatasyncEioAfterVariable = "KEEL_FAILPOINT_FDATASYNC_EIO_AFTER";

    private static readonly long FdatasyncEioAfter =
        long.TryParse(Environment.GetEnvironmentVariable(FdatasyncEioAfterVariable), out var after) && after >= 0 ? after : -1;

    private static long _fdatasyncCalls;

    /// <summary>True when this fdatasync must fail (the failpoint is set and its count of good calls is used up).</summary>
    internal static bool FdatasyncFails() =>
        FdatasyncEioAfter >= 0 && Interlocked.Increment(ref _fdatasyncCalls) > FdatasyncEioAfter;
}
