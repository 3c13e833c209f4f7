using System.Runtime.CompilerServices;

// The unit tests drive the log, progress and inflights state machines directly; applications only read them.
[assembly: InternalsVisibleTo("Keel.Raft.Tests")]
