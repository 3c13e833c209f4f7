namespace Keel.Quorum.Tests;

public class ZoneAnalysisTests
{
    private static List<ZonedMember> Layout(params (string Zone, int Count)[] zones)
    {
        var members = new List<ZonedMember>();
        ulong id = 1;
        foreach (var (zone, count) in zones)
            for (var i = 0; i < count; i++) members.Add(new ZonedMember(id++, zone));
        return members;
    }

    [Fact]
    public void Two_two_one_survives_any_one_zone()
    {
        var report = ZoneAnalysis.Analyze(Layout(("us-east-1a", 2), ("us-east-1b", 2), ("us-east-1c", 1)));
        Assert.Equal(3, report.QuorumSize);
        Assert.Equal(2, report.NodeFailuresTolerated);
        Assert.Equal(1, report.ZoneFailuresTolerated);
        Assert.True(report.SurvivesAnyZoneLoss);
        Assert.Empty(report.CriticalZones);
        Assert.Empty(report.Warnings);
        Assert.Equal("5 voters as 2-2-1 across 3 zones (us-east-1a=2, us-east-1b=2, us-east-1c=1), quorum 3: " +
                     "survives any 2 node failures and any 1 zone failure.", report.Summary);
    }

    [Fact]
    public void Three_two_does_not_survive_losing_the_larger_zone()
    {
        var report = ZoneAnalysis.Analyze(Layout(("b", 2), ("a", 3)));
        Assert.Equal(2, report.NodeFailuresTolerated);
        Assert.Equal(0, report.ZoneFailuresTolerated);
        Assert.False(report.SurvivesAnyZoneLoss);
        var critical = Assert.Single(report.CriticalZones);
        Assert.Equal("a", critical.Zone);
        Assert.Contains(report.Warnings, w => w.Contains("losing zone a (3 voters) leaves 2 of 5, below quorum 3"));
        Assert.StartsWith("5 voters as 3-2 across 2 zones (a=3, b=2)", report.Summary);
    }

    [Fact]
    public void One_one_one_survives_one_zone()
    {
        var report = ZoneAnalysis.Analyze(Layout(("a", 1), ("b", 1), ("c", 1)));
        Assert.Equal(1, report.NodeFailuresTolerated);
        Assert.Equal(1, report.ZoneFailuresTolerated);
        Assert.Empty(report.Warnings);
    }

    [Fact]
    public void Three_three_three_survives_one_zone_but_not_two()
    {
        var report = ZoneAnalysis.Analyze(Layout(("a", 3), ("b", 3), ("c", 3)));
        Assert.Equal(5, report.QuorumSize);
        Assert.Equal(4, report.NodeFailuresTolerated);
        Assert.Equal(1, report.ZoneFailuresTolerated);
        Assert.All(report.Zones, zone => Assert.True(zone.LossKeepsQuorum));
    }

    [Fact]
    public void Single_zone_is_a_single_point_of_failure()
    {
        var report = ZoneAnalysis.Analyze(Layout(("a", 3)));
        Assert.Equal(0, report.ZoneFailuresTolerated);
        Assert.Contains(report.Warnings, w => w.Contains("all 3 voters are in zone a"));
    }

    [Fact]
    public void Spread_over_five_zones_survives_two_zone_losses()
    {
        var report = ZoneAnalysis.Analyze(Layout(("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)));
        Assert.Equal(2, report.ZoneFailuresTolerated);
    }

    [Fact]
    public void Larger_quorum_loses_zone_tolerance()
    {
        // 2-2-1 with a 4-of-5 quorum: losing either 2-voter zone leaves 3 < 4.
        var report = ZoneAnalysis.Analyze(Layout(("a", 2), ("b", 2), ("c", 1)), quorumSize: 4);
        Assert.Equal(1, report.NodeFailuresTolerated);
        Assert.Equal(0, report.ZoneFailuresTolerated);
        Assert.Equal(2, report.CriticalZones.Count());
    }

    [Fact]
    public void Invalid_input_is_refused()
    {
        Assert.Throws<ArgumentException>(() => ZoneAnalysis.Analyze([]));
        Assert.Throws<ArgumentException>(() => ZoneAnalysis.Analyze([new ZonedMember(1, "a"), new ZonedMember(1, "b")]));
        Assert.Throws<ArgumentException>(() => ZoneAnalysis.Analyze([new ZonedMember(1, "")]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ZoneAnalysis.Analyze([new ZonedMember(1, "a")], 2));
    }
}
