using Keel.Core;
using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class HeartbeatScheduleTests
{
    [Fact]
    public void Delays_stay_within_the_jitter_bounds_and_cover_them()
    {
        var schedule = new HeartbeatSchedule(new HeartbeatScheduleOptions { IntervalMs = 1000, JitterFraction = 0.1 }, new DeterministicRandom(42), 0);
        Assert.Equal(900, schedule.MinDelayMs);
        Assert.Equal(1100, schedule.MaxDelayMs);
        long min = long.MaxValue, max = long.MinValue, sum = 0;
        const int draws = 20_000;
        for (var i = 0; i < draws; i++)
        {
            var delay = schedule.NextDelayMs();
            Assert.InRange(delay, 900, 1100);
            min = Math.Min(min, delay);
            max = Math.Max(max, delay);
            sum += delay;
        }
        Assert.Equal(900, min);
        Assert.Equal(1100, max);
        Assert.InRange(sum / (double)draws, 995, 1005); // unbiased: receivers still see a 1 s mean
        schedule.AssertInvariants();
    }

    [Fact]
    public void The_same_seed_replays_the_same_send_times_and_another_seed_does_not()
    {
        static long[] SendTimes(ulong seed)
        {
            var schedule = new HeartbeatSchedule(new HeartbeatScheduleOptions { JitterFraction = 0.2 }, new DeterministicRandom(seed).Split("heartbeat", 3), 5000);
            var times = new long[50];
            times[0] = schedule.NextSendMs;
            for (var i = 1; i < times.Length; i++) times[i] = schedule.ScheduleNext(times[i - 1]);
            return times;
        }
        Assert.Equal(SendTimes(7), SendTimes(7));
        Assert.NotEqual(SendTimes(7), SendTimes(8));
        var times = SendTimes(7);
        Assert.InRange(times[0], 5000, 5999); // first send spread over one interval to de-synchronize starts
        for (var i = 1; i < times.Length; i++) Assert.InRange(times[i] - times[i - 1], 800, 1200);
    }

    [Fact]
    public void Nodes_started_together_do_not_send_in_lockstep()
    {
        var root = new DeterministicRandom(2024);
        var firstSends = Enumerable.Range(0, 20)
            .Select(node => new HeartbeatSchedule(new HeartbeatScheduleOptions(), root.Split("heartbeat", node), 0).NextSendMs)
            .ToArray();
        Assert.True(firstSends.Distinct().Count() >= 18, string.Join(",", firstSends));
    }

    [Fact]
    public void Zero_jitter_is_exactly_periodic_and_due_and_lateness_are_reported()
    {
        var schedule = new HeartbeatSchedule(new HeartbeatScheduleOptions { IntervalMs = 250, JitterFraction = 0 }, new DeterministicRandom(1), 0);
        var next = schedule.ScheduleNext(1000);
        Assert.Equal(1250, next);
        Assert.False(schedule.IsDue(1249));
        Assert.True(schedule.IsDue(1250));
        Assert.Equal(0, schedule.LatenessMs(1200));
        Assert.Equal(750, schedule.LatenessMs(2000));
        Assert.Equal(250, schedule.NextDelayMs());
    }
}
