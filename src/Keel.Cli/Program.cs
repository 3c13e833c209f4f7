using System.CommandLine;
using Keel.Cli;
using Keel.Simulation.Scenarios;

// The Keel command line. Each command lives in its own file; this only wires them together.
var root = new RootCommand("Keel: a distributed coordination service built from production patterns.")
{
    SimulateCommand.Create(),
    ServeCommand.Create(),
    DevClusterCommand.Create(),
    SnapshotCommands.Create(),
};
foreach (var command in ClientCommands.Create()) root.Subcommands.Add(command);
foreach (var command in GossipCommands.Create()) root.Subcommands.Add(command);
// No command: a single member serving 127.0.0.1:2379 with its data in ./keel-data, as `etcd` with no flags does.
root.SetAction((parseResult, cancellation) => ServeCommand.RunDefaultAsync(cancellation));
return await root.Parse(args).InvokeAsync();
