// One test class at a time: every class starts its own real members, and on 2 cores two clusters starting side by side
// (each member JIT-compiling Kestrel, gRPC, gossip and metrics) starved each other's leaders into elections.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Keel.DotnetEtcd.Tests
{
    /// <summary>Tests that load the machine (64 writers, whole-cluster restarts) run here: after the parallel ones, one at a time.</summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class SerialCollection
    {
        public const string Name = "serial real-process tests";
    }
}
