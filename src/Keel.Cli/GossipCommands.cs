using System.CommandLine;
using System.Globalization;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Keel.Gossip;
using Keel.Gossip.Hosting;
using Keel.Protocol.V1;
using Keel.Server.Hosting;
using Keel.Server.Security;

namespace Keel.Cli;

/// <summary>
/// <c>./keel agent --join HOST:PORT</c>: a non-voting gossip member (Consul's client agent) that joins the SWIM pool
/// through any server's peer address and stays until Ctrl-C (then leaves gracefully); and
/// <c>./keel members --endpoints HOST:PORT</c>: every member as a server sees it, with its state, zone, incarnation and phi.
/// <c>./keel keyring list|install KEY|use KEY|remove KEY</c>: the gossip encryption keyring of every server, changed through the Raft log.
/// </summary>
internal static class GossipCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Agent();
        yield return Members();
        yield return Keyring();
    }

    private static Command Agent()
    {
        var join = new Option<string[]>("--join") { Description = "A server's peer address (host:port) or another agent's; repeatable.", Required = true, AllowMultipleArgumentsPerToken = true };
        var bind = new Option<string>("--bind") { Description = "UDP address to gossip on.", DefaultValueFactory = _ => "127.0.0.1:0" };
        var zone = new Option<string>("--zone") { Description = "This agent's zone tag.", DefaultValueFactory = _ => "default" };
        var keyFile = new Option<string>("--gossip-key-file")
        {
            Description = "File of the cluster's base64 AES-256 gossip keys, one per line, the first the primary (`keel keyring list > FILE` on a server makes one); re-read when it changes.",
            Required = true,
        };
        var command = new Command("agent", "Run a non-voting gossip member that joins a Keel cluster.") { join, bind, zone, keyFile };
        command.SetAction(async (parse, cancellation) =>
        {
            GossipAgent agent;
            var dropLog = new DropLogLimiter();
            try
            {
                var options = new GossipAgentOptions
                {
                    Keys = GossipKeyFile.Read(parse.GetValue(keyFile)!),
                    OnPacketDropped = (reason, from) =>
                    {
                        var count = dropLog.ShouldLog(reason);
                        if (count > 0) Console.Error.WriteLine($"keel agent: gossip packet from {from} dropped ({DropLogLimiter.NameOf(reason)}; {count} so far)");
                    },
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
            using var reloading = new CancellationTokenSource();
            var reloader = GossipKeyFile.FollowAsync(agent, parse.GetValue(keyFile)!, TimeSpan.FromSeconds(1),
                keys => Console.WriteLine($"keel agent: gossip keys reloaded: {keys.Count} key(s), primary {GossipKeyFile.Fingerprint(keys[0])}"),
                error => Console.Error.WriteLine($"keel agent: keeping the current gossip keys: {error.Message}"), reloading.Token);
            await stop.Task;
            reloading.Cancel();
            await reloader;
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

    private static Command Keyring()
    {
        var endpoints = new Option<string>("--endpoints") { Description = "Comma-separated client endpoints (host:port); the first that answers is used.", DefaultValueFactory = _ => "127.0.0.1:2379" };
        var security = new CliConnection();
        var command = new Command("keyring", "List or change the gossip encryption keyring of every server (Consul's `consul keyring`): install, use, remove go through the Raft log.");
        var list = security.AddTo(new Command("list", "Print the keyring, primary first (one base64 key per line: the output is a valid --gossip-key-file).") { endpoints });
        list.SetAction((parse, cancellation) => CallKeyring(parse, security, parse.GetValue(endpoints)!, KeyringRequest.Types.Action.List, "", cancellation));
        command.Subcommands.Add(list);
        foreach (var (name, action, description) in new[]
        {
            ("install", KeyringRequest.Types.Action.Install, "Add KEY (base64, 32 bytes) to every server's keyring: accepted on receive, not used to encrypt."),
            ("use", KeyringRequest.Types.Action.Use, "Make the installed KEY the primary: every server encrypts with it (the others stay accepted)."),
            ("remove", KeyringRequest.Types.Action.Remove, "Remove KEY from every server's keyring (not the primary)."),
        })
        {
            var key = new Argument<string>("KEY") { Description = "Base64 of a 32-byte key (`openssl rand -base64 32`)." };
            var sub = security.AddTo(new Command(name, description) { key, endpoints });
            sub.SetAction((parse, cancellation) => CallKeyring(parse, security, parse.GetValue(endpoints)!, action, parse.GetValue(key)!, cancellation));
            command.Subcommands.Add(sub);
        }
        return command;
    }

    private static async Task<int> CallKeyring(ParseResult parse, CliConnection security, string endpoints, KeyringRequest.Types.Action action, string key,
        CancellationToken cancellation)
    {
        RpcException? last = null;
        foreach (var endpoint in endpoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            KeyringResponse response;
            try
            {
                using var channel = security.Open(parse, endpoint, TimeSpan.FromSeconds(2));
                using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                bound.CancelAfter(TimeSpan.FromSeconds(10));
                response = await new KeelService.KeelServiceClient(channel).KeyringAsync(new KeyringRequest { Action = action, Key = key }, cancellationToken: bound.Token);
            }
            catch (RpcException error) when (error.StatusCode == StatusCode.Unavailable)
            {
                last = error;
                continue;
            }
            catch (RpcException error)
            {
                Console.Error.WriteLine($"Error: {error.Status.Detail}");
                return 1;
            }
            catch (ArgumentException error)
            {
                Console.Error.WriteLine($"Error: {error.Message}");
                return 2;
            }
            if (action != KeyringRequest.Types.Action.List)
                Console.Error.WriteLine($"keel keyring: {action.ToString().ToLowerInvariant()} committed; every server applies it in log order. Agents read --gossip-key-file: update theirs too.");
            foreach (var k in response.Keys) Console.WriteLine(k.Primary ? $"{k.Key} primary {k.Fingerprint}" : $"{k.Key} {k.Fingerprint}");
            return 0;
        }
        Console.Error.WriteLine($"Error: {last?.Status.Detail ?? "no endpoint given"}");
        return 1;
    }

    private static Command Members()
    {
        var endpoints = new Option<string>("--endpoints") { Description = "A server's client endpoint (host:port).", DefaultValueFactory = _ => "127.0.0.1:2379" };
        var security = new CliConnection();
        var command = security.AddTo(new Command("members", "List every member (servers and agents) with state, zone, incarnation and phi.") { endpoints });
        command.SetAction(async (parse, cancellation) =>
        {
            var endpoint = parse.GetValue(endpoints)!.Split(',')[0].Trim();
            MembersResponse response;
            try
            {
                using var channel = security.Open(parse, endpoint, TimeSpan.FromSeconds(2));
                response = await new KeelService.KeelServiceClient(channel).MembersAsync(new MembersRequest(), cancellationToken: cancellation);
            }
            catch (RpcException error)
            {
                Console.Error.WriteLine($"Error: {error.Status.Detail}");
                return 1;
            }
            catch (ArgumentException error)
            {
                Console.Error.WriteLine($"Error: {error.Message}");
                return 2;
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
