// The shared-cluster collection and the leader-kill test run side by side: two clusters at most per test project.
[assembly: CollectionBehavior(MaxParallelThreads = 2)]
