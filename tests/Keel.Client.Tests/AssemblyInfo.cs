// One test class at a time: every real-process class starts its own members, and on 2 cores two clusters starting side
// by side starve each other's leaders into elections (as in Keel.DotnetEtcd.Tests).
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Keel.Client.Tests
{
    /// <summary>Real-process test classes run here, one at a time.</summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class SerialCollection
    {
        public const string Name = "serial real-process tests";
    }
}
