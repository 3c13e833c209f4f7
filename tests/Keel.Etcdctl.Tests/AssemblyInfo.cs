// One test class at a time: every class starts its own real members, and on 2 cores two clusters starting side by side
// (each member JIT-compiling Kestrel, gRPC, gossip and metrics) starved each other's leaders into elections.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

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
