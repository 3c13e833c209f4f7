// One test class at a time: they share one real cluster, and on 2 cores parallel classes would starve its leader.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Keel.AspNetCore.Tests
{
    /// <summary>Every class here runs in this collection, one at a time, against the one cluster of <see cref="ClusterFixture"/>.</summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class SerialCollection : ICollectionFixture<ClusterFixture>
    {
        public const string Name = "serial real-process tests";
    }
}
