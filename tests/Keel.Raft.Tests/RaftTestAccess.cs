namespace Keel.Raft.Tests;

/// <summary>Builds internal state-machine pieces for unit tests (the library grants the tests internal access).</summary>
internal static class RaftTestAccess
{
    public sealed class ProgressFactory
    {
        public Progress Create(ulong next) => new(next, maxInflightMessages: 4, maxInflightBytes: 0, isLearner: false);
    }

    public static void SentEntries(Progress pr, int count, long bytes, ulong lastIndex) => pr.SentEntries(count, bytes, lastIndex);
}
