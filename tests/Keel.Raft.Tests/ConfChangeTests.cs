using FsCheck.Xunit;
using Keel.Quorum;

namespace Keel.Raft.Tests;

public sealed class ConfChangeTests
{
    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public bool EncodingRoundTrips(byte transition, byte[] types, ulong[] ids)
    {
        var count = Math.Min(types.Length, Math.Min(ids.Length, 200));
        var changes = Enumerable.Range(0, count)
            .Select(i => new ConfigurationChangeItem((ConfigurationChangeType)(types[i] % 3), ids[i])).ToArray();
        var change = new ConfChangeV2((ConfChangeTransition)(transition % 3), changes);
        var decoded = ConfChangeV2.Decode(change.Encode());
        return decoded.Transition == change.Transition && decoded.Changes.SequenceEqual(change.Changes);
    }

    [Fact]
    public void GarbageIsRejected()
    {
        Assert.Throws<FormatException>(() => ConfChangeV2.Decode([9, 9, 9]));
        Assert.Throws<FormatException>(() => ConfChangeV2.Decode([]));
    }

    [Fact]
    public void JointIsEnteredForExplicitTransitionsOrSeveralChanges()
    {
        var one = new[] { ConfigurationChangeItem.AddVoter(4) };
        var two = new[] { ConfigurationChangeItem.AddVoter(4), ConfigurationChangeItem.Remove(1) };
        Assert.False(new ConfChangeV2(ConfChangeTransition.Auto, one).EntersJoint(out _));
        Assert.True(new ConfChangeV2(ConfChangeTransition.Auto, two).EntersJoint(out var autoLeave));
        Assert.True(autoLeave);
        Assert.True(new ConfChangeV2(ConfChangeTransition.JointExplicit, one).EntersJoint(out autoLeave));
        Assert.False(autoLeave);
        Assert.True(ConfChangeV2.LeaveJointChange.IsLeaveJoint);
    }
}
