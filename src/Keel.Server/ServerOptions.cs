using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Keel.Node;

namespace Keel.Server;

/// <summary>Whether a member starts a new cluster or joins an existing one (etcd <c>--initial-cluster-state</c>).</summary>
public enum InitialClusterState
{
    /// <summary>Every member of <see cref="ServerOptions.InitialCluster"/> bootstraps together.</summary>
    New,

    /// <summary>The member was added to a running cluster (<c>member add</c>) and learns the configuration from it.</summary>
    Existing,
}

/// <summary>
/// Settings of a Keel server, named and defaulted as etcd's flags (etcd <c>server/embed/config.go</c>) so that a
/// command line written for etcd starts Keel unchanged.
/// </summary>
public sealed record ServerOptions
{
    /// <summary>etcd's default client URL.</summary>
    public const string DefaultClientUrl = "http://127.0.0.1:2379";

    /// <summary>etcd's default peer URL.</summary>
    public const string DefaultPeerUrl = "http://127.0.0.1:2380";

    /// <summary>Human-readable name of this member (<c>--name</c>).</summary>
    public string Name { get; init; } = "default";

    /// <summary>Where the WAL, snapshots and the directory lock live (<c>--data-dir</c>).</summary>
    public string DataDir { get; init; } = "keel-data";

    /// <summary>Where clients connect (<c>--listen-client-urls</c>): HTTP/2 gRPC, plaintext on <c>http</c> URLs, TLS on <c>https</c> ones.</summary>
    public IReadOnlyList<Uri> ListenClientUrls { get; init; } = [new(DefaultClientUrl)];

    /// <summary>What this member tells others its client URLs are (<c>--advertise-client-urls</c>).</summary>
    public IReadOnlyList<Uri> AdvertiseClientUrls { get; init; } = [new(DefaultClientUrl)];

    /// <summary>
    /// Extra HTTP/1.1 listeners for <c>/metrics</c>, <c>/health</c>, <c>/livez</c>, <c>/readyz</c> and the dashboard
    /// (<c>--listen-metrics-urls</c>, as etcd; none by default). The client URLs serve the same paths over HTTP/2 only.
    /// </summary>
    public IReadOnlyList<Uri> ListenMetricsUrls { get; init; } = [];

    /// <summary>Where peers connect (<c>--listen-peer-urls</c>).</summary>
    public IReadOnlyList<Uri> ListenPeerUrls { get; init; } = [new(DefaultPeerUrl)];

    /// <summary>What this member tells others its peer URLs are (<c>--initial-advertise-peer-urls</c>).</summary>
    public IReadOnlyList<Uri> InitialAdvertisePeerUrls { get; init; } = [new(DefaultPeerUrl)];

    /// <summary>The bootstrap configuration, <c>name=url,name=url</c> (<c>--initial-cluster</c>).</summary>
    public string InitialCluster { get; init; } = "default=" + DefaultPeerUrl;

    /// <summary><c>--initial-cluster-state</c>.</summary>
    public InitialClusterState InitialClusterState { get; init; } = InitialClusterState.New;

    /// <summary>Mixed into member and cluster ids so two clusters with the same URLs differ (<c>--initial-cluster-token</c>).</summary>
    public string InitialClusterToken { get; init; } = "etcd-cluster";

    /// <summary>One Raft tick (<c>--heartbeat-interval</c>, ms).</summary>
    public int HeartbeatIntervalMs { get; init; } = 100;

    /// <summary>Election timeout (<c>--election-timeout</c>, ms).</summary>
    public int ElectionTimeoutMs { get; init; } = 1000;

    /// <summary>
    /// File of AES-256 gossip keys, one base64 key per line, the first the primary (<c>--gossip-key-file</c>). It seeds
    /// the replicated keyring when a new cluster bootstraps, and is used until this member has applied that keyring;
    /// null: the first leader generates a key and replicates it (docs/security.md, "Gossip encryption").
    /// </summary>
    public string? GossipKeyFile { get; init; }

    /// <summary>This member's zone, gossiped in its tags (<c>--zone</c>).</summary>
    public string Zone { get; init; } = "default";

    /// <summary>How often watchers that asked for progress notifications get one (etcd: 10 minutes).</summary>
    public int WatchProgressNotifyIntervalMs { get; init; } = 10 * 60 * 1000;

    /// <summary>
    /// Bounded history (<c>--auto-compaction-mode</c>, <c>--auto-compaction-retention</c>). Keel's default is periodic,
    /// one hour (etcd's is off): reads, watches and "as of a wall time" reads reach at least an hour back, and a member
    /// that runs for days does not grow without end. Retention 0 turns it off.
    /// </summary>
    public Keel.Node.AutoCompactionPolicy AutoCompaction { get; init; } = DefaultAutoCompaction;

    /// <summary>The default auto-compaction: periodic, 1 hour of history.</summary>
    public static Keel.Node.AutoCompactionPolicy DefaultAutoCompaction { get; } = new(Keel.Node.AutoCompactionMode.Periodic, 3_600_000);

    /// <summary>Entries between state snapshots (<c>--snapshot-count</c>).</summary>
    public int SnapshotCount { get; init; } = 100_000;

    /// <summary>
    /// The space quota in bytes (<c>--quota-backend-bytes</c>, etcd's default 2 GiB; 0 = the default): past it the NOSPACE
    /// alarm is raised and writes that grow the store fail with "etcdserver: mvcc: database space exceeded".
    /// </summary>
    public long QuotaBackendBytes { get; init; } = Keel.Node.KeelNodeOptions.DefaultQuotaBackendBytes;

    /// <summary>
    /// Sync the WAL on its own thread (<c>--wal-sync-pipelined</c>, on by default; <c>--wal-sync-pipelined=false</c> makes
    /// the loop wait in every fsync): the loop writes each batch to the file and goes on (stepping peers, taking
    /// requests, sending appends) while the WAL sync thread runs the fdatasync; acks, applies and answers wait for it
    /// (pipelined persistence, docs/server.md).
    /// </summary>
    public bool WalSyncPipelined { get; init; } = true;

    /// <summary>
    /// WAL syncs the sync thread may have in flight before the loop stops taking new Readys (<c>--wal-syncs-in-flight</c>,
    /// default 1: the loop works while one fsync runs and batches what arrives meanwhile into the next write).
    /// </summary>
    public int WalSyncsInFlight { get; init; } = 1;

    /// <summary>
    /// Client requests queued for the node loop at most; past it a request fails at once with "etcdserver: too many
    /// requests" (ResourceExhausted) instead of waiting in an ever longer queue.
    /// </summary>
    public int MaxQueuedRequests { get; init; } = 10_000;

    /// <summary>
    /// The longest a write or linearizable read waits for a leader when this member knows none (an election, a cut-off
    /// leader) before it fails with "etcdserver: no leader"; null = etcd 3.4's request timeout, 5 s + 2 election
    /// timeouts (7 s by default), 0 = refuse at once. A call's own gRPC deadline bounds the wait too: the member gives
    /// up <see cref="LeaderWaitAnswerMarginMs"/> before it, so the client hears the definite "no leader" (nothing was
    /// proposed) rather than its own deadline. See <see cref="Keel.Node.KeelNodeOptions.LeaderWaitMs"/>.
    /// </summary>
    public int? LeaderWaitMs { get; init; }

    /// <summary>The leader wait in effect: <see cref="LeaderWaitMs"/>, or 5 s + 2 × <see cref="ElectionTimeoutMs"/>.</summary>
    public int EffectiveLeaderWaitMs => LeaderWaitMs ?? 5_000 + 2 * ElectionTimeoutMs;

    /// <summary>How long before a call's deadline a request waiting for a leader gives up (time for the answer to travel).</summary>
    public const int LeaderWaitAnswerMarginMs = 100;

    /// <summary>
    /// Requests that may wait for a leader at once; past it one that finds no leader fails at once with "etcdserver: too
    /// many requests" (<see cref="Keel.Node.KeelNodeOptions.MaxRequestsAwaitingLeader"/>).
    /// </summary>
    public int MaxRequestsAwaitingLeader { get; init; } = 10_000;

    /// <summary>Peer messages queued for the node loop at most; past it they are dropped (Raft resends).</summary>
    public int MaxQueuedPeerMessages { get; init; } = 50_000;

    /// <summary>
    /// The largest Range or Txn response sent (<c>--max-response-bytes</c>, 1 GiB; protobuf cannot encode 2 GiB): a
    /// larger one fails with ResourceExhausted naming the size, and the client pages with <c>limit</c>.
    /// </summary>
    public long MaxResponseBytes { get; init; } = 1L << 30;

    /// <summary>
    /// How Authenticate makes tokens (<c>--auth-token</c>, etcd's syntax): <c>simple</c> (random tokens kept by the member
    /// that issued them, valid for <see cref="AuthTokenTtlSeconds"/> after their last use) or
    /// <c>jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|ES256[,ttl=5m]</c> (signed tokens any member with the public key
    /// verifies).
    /// </summary>
    public string AuthToken { get; init; } = "simple";

    /// <summary>Lifetime of a simple token after its last use (<c>--auth-token-ttl</c>, seconds, etcd's default 300).</summary>
    public int AuthTokenTtlSeconds { get; init; } = 300;

    /// <summary>
    /// The bcrypt cost of password hashes (<c>--bcrypt-cost</c>, 4 to 31, etcd's default 10): each step doubles the
    /// work of hashing and of every password check.
    /// </summary>
    public int BcryptCost { get; init; } = 10;

    /// <summary>
    /// Client certificates are checked and, for a request without a token, the certificate's common name is the user
    /// (<c>--client-cert-auth</c>).
    /// </summary>
    public bool ClientCertAuth => ClientTls.ClientCertAuth;

    /// <summary>
    /// TLS of the client URLs (and of https metrics URLs): <c>--cert-file</c>, <c>--key-file</c>,
    /// <c>--trusted-ca-file</c>, <c>--client-cert-auth</c>, <c>--auto-tls</c>, <c>--cipher-suites</c>. Used on the
    /// <c>https</c> URLs only.
    /// </summary>
    public Security.TlsSettings ClientTls { get; init; } = new();

    /// <summary>
    /// TLS of the peer URLs: <c>--peer-cert-file</c>, <c>--peer-key-file</c>, <c>--peer-trusted-ca-file</c>,
    /// <c>--peer-client-cert-auth</c>, <c>--peer-cert-allowed-cn</c>, <c>--peer-auto-tls</c>, <c>--cipher-suites</c>.
    /// Used on the <c>https</c> peer URLs only.
    /// </summary>
    public Security.TlsSettings PeerTls { get; init; } = new();

    /// <summary>
    /// The cluster secret every member must hold the same copy of (<c>--peer-secret-file</c>, Keel only): a member
    /// dialing a peer proves it in the hello. Null: no proof is asked for (a warning is logged when peer TLS does not
    /// authenticate peers either).
    /// </summary>
    public string? PeerSecretFile { get; init; }

    /// <summary>With work queued and no batch finished for this long, the loop counts as stalled: health turns NOT_SERVING.</summary>
    public int LoopStallMs { get; init; } = 5_000;

    /// <summary>Parses <see cref="InitialCluster"/> into members with their ids, in the order given.</summary>
    /// <exception cref="ArgumentException">The string is malformed or names a member twice.</exception>
    public IReadOnlyList<InitialMember> ParseInitialCluster()
    {
        var urlsByName = new Dictionary<string, List<Uri>>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var part in InitialCluster.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = part.IndexOf('=');
            if (equals <= 0 || equals == part.Length - 1)
                throw new ArgumentException($"--initial-cluster: '{part}' is not name=url");
            var name = part[..equals];
            if (!Uri.TryCreate(part[(equals + 1)..], UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                throw new ArgumentException($"--initial-cluster: '{part[(equals + 1)..]}' is not an http URL");
            if (!urlsByName.TryGetValue(name, out var urls))
            {
                urlsByName[name] = urls = [];
                order.Add(name);
            }
            urls.Add(url);
        }
        if (order.Count == 0) throw new ArgumentException("--initial-cluster names no member");
        var members = order.Select(name => new InitialMember(MemberId(urlsByName[name], InitialClusterToken), name,
            urlsByName[name].Select(UrlText).ToArray())).ToList();
        if (members.Select(m => m.Id).Distinct().Count() != members.Count)
            throw new ArgumentException("--initial-cluster: two members share peer URLs");
        if (!members.Any(m => m.Name == Name))
            throw new ArgumentException($"--initial-cluster does not contain this member's name '{Name}'");
        return members;
    }

    /// <summary>A URL as etcd prints it: the original text without a trailing slash.</summary>
    public static string UrlText(Uri url) => url.OriginalString.TrimEnd('/');

    /// <summary>
    /// etcd's member id: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs and the cluster token
    /// (etcd <c>server/etcdserver/api/membership/member.go</c> NewMember), so ids are stable across restarts.
    /// </summary>
    public static ulong MemberId(IEnumerable<Uri> peerUrls, string clusterToken)
    {
        var text = string.Concat(peerUrls.Select(UrlText).Order(StringComparer.Ordinal)) + clusterToken;
        var hash = SHA1.HashData(Encoding.UTF8.GetBytes(text));
        var id = BinaryPrimitives.ReadUInt64BigEndian(hash);
        return id == 0 ? 1 : id;
    }

    /// <summary>The cluster id: SHA-1 over the sorted member ids (etcd's derivation in <c>membership/cluster.go</c>).</summary>
    public static ulong ClusterId(IEnumerable<ulong> memberIds)
    {
        var ids = memberIds.Order().ToArray();
        var bytes = new byte[ids.Length * 8];
        for (var i = 0; i < ids.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), ids[i]);
        return BinaryPrimitives.ReadUInt64BigEndian(SHA1.HashData(bytes));
    }
}
