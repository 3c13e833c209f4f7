using Keel.Core;
using Keel.Mvcc;
using Keel.Raft;
using Keel.Simulation;

namespace Keel.Node.Tests;

/// <summary>
/// The loop logic the server and the simulator share (<see cref="NodeDriver"/>), driven by a host whose clock the test
/// moves: ticks come from the driver's own schedule, a turn's work is one batch with one disk sync, answers leave at the
/// end of the turn, and a captured snapshot goes to the host's background writer.
/// </summary>
public sealed class NodeDriverTests
{
    private sealed class Idle : ISimProcess
    {
        public void Start(NodeContext context) { }
        public void OnMessage(NodeContext context, int from, object message) { }
        public void OnTimer(NodeContext context, long timerId, int tag) { }
    }

    private sealed class ManualHost : INodeDriverHost
    {
        public long MonotonicMs { get; set; }
        public long WallClockMs => 1_800_000_000_000 + MonotonicMs;
        public List<Message> Sent { get; } = [];
        public List<KvResult> Answers { get; } = [];
        public List<SnapshotToPersist> SnapshotsToWrite { get; } = [];
        public int Ticks { get; private set; }
        public int AnswersSeenBeforeRelease { get; private set; } = -1;

        public void Send(Message message) => Sent.Add(message);
        public void Answer(KvResult result) => Answers.Add(result);
        public void WriteSnapshotInBackground(SnapshotToPersist snapshot) => SnapshotsToWrite.Add(snapshot);
        public void OnTicked(long monotonicMs) => Ticks++;
        public void BeforeAnswers() => AnswersSeenBeforeRelease = Answers.Count;
        public void AfterTurn() { }
        public void Removed() => RemovedCalls++;
        public int RemovedCalls { get; private set; }
    }

    private static (NodeDriver Driver, ManualHost Host, SimDisk Disk, Queue<Action> Work) SingleMember(int snapshotEvery = 10_000)
    {
        var disk = new Keel.Simulation.Simulation(7).AddNode(_ => new Idle()).Disk;
        var node = KeelNode.Open(new KeelNodeOptions
        {
            NodeId = 1, Voters = [1], Random = new DeterministicRandom(7), TickMs = 10, RequestTimeoutMs = 3_000,
            SnapshotEveryEntries = snapshotEvery, SnapshotTrailingEntries = 2, PersistSnapshotsInBackground = true,
        }, new SimStorageDirectory(disk, "wal/"));
        var host = new ManualHost();
        var driver = new NodeDriver(node, host, tickEveryMs: 10);
        driver.Start();
        var work = new Queue<Action>();
        return (driver, host, disk, work);
    }

    private static int Turn(NodeDriver driver, Queue<Action> work) => driver.RunTurn((out Action item) => work.TryDequeue(out item!));

    private static void ElectItself(NodeDriver driver, ManualHost host, Queue<Action> work)
    {
        for (var i = 0; i < 100 && !driver.Node.IsLeader; i++)
        {
            host.MonotonicMs = driver.NextTickMs;
            Turn(driver, work);
        }
        Assert.True(driver.Node.IsLeader, "a single voter elects itself once its ticks run");
        // The leader's first entry commits and applies in the turns after.
        host.MonotonicMs = driver.NextTickMs;
        Turn(driver, work);
    }

    [Fact]
    public void Ticks_come_from_the_drivers_schedule_not_from_every_turn()
    {
        var (driver, host, _, work) = SingleMember();
        Assert.Equal(1, host.Ticks);
        Assert.Equal(10, driver.NextTickMs);
        host.MonotonicMs = 5;
        Assert.Equal(0, Turn(driver, work));
        Assert.Equal(1, host.Ticks);
        host.MonotonicMs = 10;
        Turn(driver, work);
        Assert.Equal(2, host.Ticks);
        Assert.Equal(20, driver.NextTickMs);
        // After a stall the next tick is one interval after the late one, not a burst of missed ones.
        host.MonotonicMs = 95;
        Turn(driver, work);
        Assert.Equal(3, host.Ticks);
        Assert.Equal(105, driver.NextTickMs);
    }

    [Fact]
    public void One_turn_runs_its_queued_writes_as_one_batch_with_one_sync_and_answers_them_at_its_end()
    {
        var (driver, host, disk, work) = SingleMember();
        ElectItself(driver, host, work);
        long SyncsOfOneTurnWith(int writes, ulong firstRequest)
        {
            for (var i = 0; i < writes; i++)
            {
                var request = firstRequest + (ulong)i;
                work.Enqueue(() => driver.Node.Submit(request, KvCommand.Of(new PutRequest { Key = [(byte)'k', (byte)request], Value = [1] })));
            }
            var syncsBefore = disk.SyncCount;
            host.Answers.Clear();
            Assert.Equal(writes, Turn(driver, work));
            Assert.Equal(writes, host.Answers.Count);
            Assert.All(host.Answers, a => Assert.False(a.IsError, a.Error?.ToString()));
            Assert.Equal(0, host.AnswersSeenBeforeRelease);
            return disk.SyncCount - syncsBefore;
        }
        var one = SyncsOfOneTurnWith(1, 1);
        var fifty = SyncsOfOneTurnWith(50, 100);
        Assert.True(one > 0, "a write is synced");
        Assert.Equal(one, fifty);
    }

    [Fact]
    public void More_than_a_turns_worth_of_work_is_left_for_the_next_turn()
    {
        var (driver, host, _, work) = SingleMember();
        for (var i = 0; i < NodeDriver.MaxItemsPerTurn + 10; i++) work.Enqueue(() => { });
        Assert.Equal(NodeDriver.MaxItemsPerTurn, Turn(driver, work));
        Assert.Equal(10, Turn(driver, work));
    }

    [Fact]
    public void A_captured_snapshot_goes_to_the_background_writer_and_comes_back_through_a_turn()
    {
        var (driver, host, disk, work) = SingleMember(snapshotEvery: 20);
        ElectItself(driver, host, work);
        ulong request = 1;
        while (host.SnapshotsToWrite.Count == 0 && request < 100)
        {
            var id = request++;
            work.Enqueue(() => driver.Node.Submit(id, KvCommand.Of(new PutRequest { Key = [(byte)'k', (byte)(id % 5)], Value = [2] })));
            Turn(driver, work);
        }
        var snapshot = Assert.Single(host.SnapshotsToWrite);
        new Keel.Storage.SnapshotStore(new SimStorageDirectory(disk, "wal/")).Save(snapshot.Index, snapshot.Term, snapshot.Image.SizeBytes, snapshot.Image.EncodeTo);
        work.Enqueue(() => driver.SnapshotWritten(snapshot.Index, snapshot.Term, durable: true));
        Turn(driver, work);
        Assert.Equal(snapshot.Index, driver.Node.SnapshotIndex);
        Assert.Equal(0, driver.Node.SnapshotImageBytesInMemory);
    }

    [Fact]
    public void A_turn_before_the_start_is_refused()
    {
        var disk = new Keel.Simulation.Simulation(8).AddNode(_ => new Idle()).Disk;
        var node = KeelNode.Open(new KeelNodeOptions { NodeId = 1, Voters = [1], Random = new DeterministicRandom(8), TickMs = 10 }, new SimStorageDirectory(disk, "wal/"));
        var driver = new NodeDriver(node, new ManualHost(), 10);
        Assert.Throws<InvariantViolationException>(() => driver.RunTurn((out Action item) => { item = null!; return false; }));
    }
}
