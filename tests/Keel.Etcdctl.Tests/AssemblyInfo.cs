// The shared-cluster collection and the leader-kill test run side by side: two clusters at most per test project.
[assembly: CollectionBehavior(MaxParallelThreads = 2)]

namespace Keel.Etcdctl.Tests
{
    /// <summary>
    /// Tests that load the machine (1 MiB writes to fill a disk, two clusters for a restore, killed members) run in this
    /// collection: after the parallel ones, one at a time, so their clusters never compete with others for the CPU.
    /// </summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class SerialCollection
    {
        public const string Name = "serial real-process tests";
    }
}
