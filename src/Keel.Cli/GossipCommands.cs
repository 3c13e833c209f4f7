using System.CommandLine;
using System.Globalization;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Keel.Gossip;
using Keel.Gossip.Hosting;
using Keel.Protocol.V1;
using Keel.Server.Hosting;

namespace Keel.Cli;

/// <summary>
/// <c>./keel agent --join HOST:PORT</c>: a non-voting gossip member (Consul's client agent) that joins the SWIM pool
/// through any server's peer address and stays until Ctrl-C (then leaves gracefully); and
/// <c>./keel members --endpoints HOST:PORT</c>: every member as a server sees it, with its state, zone, incarnation and phi.
/// </summary>
internal static class GossipCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Agent();
        yield return Members();
    }

    /// <summary>Parses <c>--gossip-key</c>: base64 of 16 to 32 bytes.</summary>
    internal static byte[]? ParseKey(string? text)
    {
        if (text is null) return null;
        byte[] key;
        try
        {
            key = Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw new ArgumentException("--gossip-key must be base64 (e.g. from `openssl rand -base64 32`)");
        }
        if (key.Length is < GossipKeyring.MinKeyBytes or > 32) throw new ArgumentException($"--gossip-key must decode to {GossipKeyring.MinKeyBytes} to 32 bytes, not {key.Length}");
        return key;
    }

    private static Command Agent()
    {
        var join = new Option<string[]>("--join") { Description = "A server's peer address (host:port) or another agent's; repeatable.", Required = true, AllowMultipleArgumentsPerToken = true };
        var bind = new Option<string>("--bind") { Description = "UDP address to gossip on.", DefaultValueFactory = _ => "127.0.0.1:0" };
        var zone = new Option<string>("--zone") { Description = "This agent's zone tag.", DefaultValueFactory = _ => "default" };
        var key = new Option<string?>("--gossip-key") { Description = "Base64 secret shared by the cluster (default: derived from --initial-cluster-token)." };
        var token = new Option<string>("--initial-cluster-token") { Description = "The cluster's token (for the default key).", DefaultValueFactory = _ => "etcd-cluster" };
        var command = new Command("agent", "Run a non-voting gossip member that joins a Keel cluster.") { join, bind, zone, key, token };
        command.SetAction(async (parse, cancellation) =>
        {
            GossipAgent agent;
            try
            {
                var options = new GossipAgentOptions
                {
                    Key = ParseKey(parse.GetValue(key)) ?? GossipHost.DefaultKey(parse.GetValue(token)!),
                    BindEndpoint = Endpoint(parse.GetValue(bind)!),
                    Seeds = parse.GetValue(join)!.Select(Endpoint).ToArray(),
                    Tags = new MemberTags(parse.GetValue(zone)!, "agent", Keel.Server.Api.MaintenanceApiVersion.Text, 0),
                    RandomSeed = (ulong)Random.Shared.NextInt64(),
                    // Ctrl-C gives the command about 2 s before the process is ended: leave within 1 s.
                    LeaveTimeoutMs = 1_000,
                };
                agent = await GossipAgent.StartAsync(options, cancellation);
            }
            catch (Exception error) when (error is ArgumentException or GossipJoinException or System.Net.Sockets.SocketException)
            {
                Console.Error.WriteLine($"keel agent: {error.Message}");
                return 1;
            }
            var known = await agent.WaitForMembersAsync(members => members.Count > 1, cancellation).WaitAsync(TimeSpan.FromSeconds(2), cancellation)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result.Count : agent.Members.Count, TaskScheduler.Default);
            Console.WriteLine($"keel agent {agent.Id:x16} gossiping on udp {agent.LocalEndpoint}; {known} members known; Ctrl-C leaves");
            // Leave on Ctrl-C or SIGTERM: take the signals ourselves so the process stays up until the leave is sent.
            var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnSignal(System.Runtime.InteropServices.PosixSignalContext context)
            {
                context.Cancel = true;
                stop.TrySetResult();
            }
            using var onInterrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
            using var onTerminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
            using var onCancel = cancellation.Register(() => stop.TrySetResult());
            await stop.Task;
            try
            {
                // Leaving announces the departure (peers mark it left, not dead), then stops the agent.
                await agent.LeaveAsync().WaitAsync(TimeSpan.FromSeconds(1.5));
                Console.WriteLine("keel agent: left");
            }
            catch (TimeoutException)
            {
                await agent.DisposeAsync();
                Console.WriteLine("keel agent: stopped without confirming the leave");
            }
            return 0;
        });
        return command;
    }

    private static Command Members()
    {
        var endpoints = new Option<string>("--endpoints") { Description = "A server's client endpoint (host:port).", DefaultValueFactory = _ => "127.0.0.1:2379" };
        var command = new Command("members", "List every member (servers and agents) with state, zone, incarnation and phi.") { endpoints };
        command.SetAction(async (parse, cancellation) =>
        {
            var endpoint = parse.GetValue(endpoints)!.Split(',')[0].Trim();
            using var channel = GrpcChannel.ForAddress(endpoint.Contains("://", StringComparison.Ordinal) ? endpoint : "http://" + endpoint);
            MembersResponse response;
            try
            {
                response = await new KeelService.KeelServiceClient(channel).MembersAsync(new MembersRequest(), cancellationToken: cancellation);
            }
            catch (RpcException error)
            {
                Console.Error.WriteLine($"Error: {error.Status.Detail}");
                return 1;
            }
            Console.WriteLine($"{"ID",-16}  {"NAME",-22} {"ROLE",-6} {"RAFT",-8} {"STATE",-7} {"HEALTH",-8} {"ZONE",-10} {"INC",5} {"PHI",7}  ADDRESS");
            foreach (var member in response.Members)
            {
                var raft = member.IsRaftMember ? member.IsLeader ? "leader" : member.IsLearner ? "learner" : "voter" : "-";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{member.Id:x16}  {Cut(member.Name, 22),-22} {member.Role,-6} {raft,-8} {Or(member.GossipState),-7} {Or(member.Health),-8} {Cut(Or(member.Zone), 10),-10} {member.Incarnation,5} {member.Phi,7:F2}  {Or(member.GossipAddress)}"));
            }
            return 0;
        });
        return command;
    }

    private static string Or(string text) => text.Length == 0 ? "-" : text;

    private static string Cut(string text, int width) => text.Length <= width ? text : text[..(width - 1)] + "…";

    private static IPEndPoint Endpoint(string text)
    {
        var uriText = text.Contains("://", StringComparison.Ordinal) ? text : "udp://" + text;
        if (!Uri.TryCreate(uriText, UriKind.Absolute, out var uri) || uri.Port <= 0 && uri.Port != 0)
            throw new ArgumentException($"'{text}' is not host:port");
        var address = IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) ? ip
            : uri.Host == "localhost" ? IPAddress.Loopback : Dns.GetHostAddresses(uri.Host).FirstOrDefault() ?? throw new ArgumentException($"cannot resolve '{uri.Host}'");
        return new IPEndPoint(address, Math.Max(0, uri.Port));
    }
}
