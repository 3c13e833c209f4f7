using System.Runtime.CompilerServices;

// The unit tests drive the log, progress and inflights state machines directly; applications only read them.
[assembly: InternalsVisibleTo("Keel.Raft.Tests")]
// The simulator's scenarios plant known bugs (RaftOptions.PlantedBug) to prove its checkers catch them.
[assembly: InternalsVisibleTo("Keel.Simulation.Scenarios")]
