using System.CommandLine;
using Keel.Cli;
using Keel.Simulation.Scenarios;

// The Keel command line. Each command lives in its own file; this only wires them together.
var root = new RootCommand("Keel: a distributed coordination service built from production patterns.")
{
    SimulateCommand.Create(),
};
// No command: run the default simulation, the most useful thing Keel can do until the server lands.
root.SetAction(parseResult => SimulateCommand.Run(scenario: null, seed: null, seeds: 20, startSeed: 1, new ScenarioSettings(), table: false));
return root.Parse(args).Invoke();
