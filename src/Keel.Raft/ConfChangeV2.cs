using System.Buffers.Binary;
using Keel.Quorum;

namespace Keel.Raft;

/// <summary>How a <see cref="ConfChangeV2"/> moves between configurations (etcd <c>raftpb.ConfChangeTransition</c>).</summary>
public enum ConfChangeTransition : byte
{
    /// <summary>A single voter change is applied directly; anything larger goes through a joint configuration that is left automatically.</summary>
    Auto,

    /// <summary>Always use a joint configuration and leave it automatically once it is applied.</summary>
    JointImplicit,

    /// <summary>Always use a joint configuration and stay in it until an explicit leave (an empty change) is proposed.</summary>
    JointExplicit,
}

/// <summary>
/// A membership change: a list of node additions/removals and how to transition (etcd <c>raftpb.ConfChangeV2</c>).
/// An empty change list means "leave the joint configuration". Carried in the log as an
/// <see cref="EntryType.ConfChange"/> entry and applied with <see cref="RaftNode.ApplyConfChange"/>.
/// </summary>
/// <param name="Transition">Simple or joint, and whether the joint configuration is left automatically.</param>
/// <param name="Changes">The node changes, applied in order.</param>
public sealed record ConfChangeV2(ConfChangeTransition Transition, IReadOnlyList<ConfigurationChangeItem> Changes)
{
    private const byte FormatVersion = 1;

    /// <summary>The change that leaves a joint configuration.</summary>
    public static ConfChangeV2 LeaveJointChange { get; } = new(ConfChangeTransition.Auto, []);

    /// <summary>True when this change leaves the joint configuration.</summary>
    public bool IsLeaveJoint => Changes.Count == 0;

    /// <summary>
    /// True when this change enters a joint configuration (etcd <c>ConfChangeV2.EnterJoint</c>): an explicit joint
    /// transition, or more than one change. <paramref name="autoLeave"/> says whether the leader leaves it on its own.
    /// </summary>
    public bool EntersJoint(out bool autoLeave)
    {
        if (Transition != ConfChangeTransition.Auto || Changes.Count > 1)
        {
            autoLeave = Transition != ConfChangeTransition.JointExplicit;
            return true;
        }
        autoLeave = false;
        return false;
    }

    /// <summary>Serializes the change for an entry payload: version, transition, count, then (type, node id) pairs.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[3 + Changes.Count * 9];
        bytes[0] = FormatVersion;
        bytes[1] = (byte)Transition;
        bytes[2] = checked((byte)Changes.Count);
        for (var i = 0; i < Changes.Count; i++)
        {
            bytes[3 + i * 9] = (byte)Changes[i].Type;
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(4 + i * 9), Changes[i].NodeId);
        }
        return bytes;
    }

    /// <summary>Parses a payload written by <see cref="Encode"/>.</summary>
    /// <exception cref="FormatException">The payload is not an encoded change.</exception>
    public static ConfChangeV2 Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 3 || data[0] != FormatVersion || data[1] > (byte)ConfChangeTransition.JointExplicit
            || data.Length != 3 + data[2] * 9)
        {
            throw new FormatException($"not an encoded configuration change ({data.Length} bytes)");
        }
        var changes = new ConfigurationChangeItem[data[2]];
        for (var i = 0; i < changes.Length; i++)
        {
            var type = data[3 + i * 9];
            if (type > (byte)ConfigurationChangeType.RemoveNode) throw new FormatException($"unknown change type {type}");
            changes[i] = new ConfigurationChangeItem((ConfigurationChangeType)type,
                BinaryPrimitives.ReadUInt64LittleEndian(data[(4 + i * 9)..]));
        }
        return new ConfChangeV2((ConfChangeTransition)data[1], changes);
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        if (IsLeaveJoint) return "leave-joint";
        var parts = Changes.Select(c => c.Type switch
        {
            ConfigurationChangeType.AddVoter => $"v{c.NodeId}",
            ConfigurationChangeType.AddLearner => $"l{c.NodeId}",
            _ => $"r{c.NodeId}",
        });
        var text = string.Join(' ', parts);
        return Transition == ConfChangeTransition.Auto ? text : $"{text} ({Transition})";
    }
}
