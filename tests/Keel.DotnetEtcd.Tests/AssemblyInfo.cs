// The shared-cluster collection and the leader-kill test run side by side: two clusters at most per test project.
[assembly: CollectionBehavior(MaxParallelThreads = 2)]

namespace Keel.DotnetEtcd.Tests
{
    /// <summary>Tests that load the machine (64 writers, whole-cluster restarts) run here: after the parallel ones, one at a time.</summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class SerialCollection
    {
        public const string Name = "serial real-process tests";
    }
}
