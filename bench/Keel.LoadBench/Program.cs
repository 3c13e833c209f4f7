// Keel.LoadBench: etcd's tools/benchmark in C#, for any etcd v3 endpoint. Commands: put, range, suite (issue 5's
// rows), ready (wait for a cluster with a leader) and compare (ratios of two systems' suite runs as markdown).
// Usage: dotnet bench/Keel.LoadBench/bin/Release/net10.0/Keel.LoadBench.dll suite --endpoints a,b,c --json out.json
using System.CommandLine;
using Keel.LoadBench;

var root = new RootCommand("Load generator for any etcd v3 endpoint (etcd's tools/benchmark, in C#).")
{
    Commands.Put(),
    Commands.Range(),
    Commands.Suite(),
    Commands.Ready(),
    Commands.Compare(),
};
return await root.Parse(args).InvokeAsync();
