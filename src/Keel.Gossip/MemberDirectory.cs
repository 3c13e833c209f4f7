using Keel.Core;

namespace Keel.Gossip;

/// <summary>
/// Interns member ids as dense indexes, so a <see cref="SwimMember"/> can keep its view of N members in flat arrays
/// (16 bytes per member) instead of a record object and a dictionary entry each. A member owns a private directory by
/// default; a simulation of thousands of members in one process passes one shared directory to all of them, so the
/// id-to-index map exists once instead of N times (the view itself stays per member). Only ids are shared, never state,
/// and indexes are handed out in first-seen order, so a deterministic run assigns the same indexes every time.
/// Not thread-safe: the members sharing a directory must be driven from one thread (the simulator's).
/// </summary>
public sealed class MemberDirectory
{
    private readonly Dictionary<ulong, int> _indexById = [];
    private readonly List<ulong> _ids = [];

    /// <summary>Ids interned so far.</summary>
    public int Count => _ids.Count;

    /// <summary>The index of <paramref name="id"/>, or -1 when it was never interned.</summary>
    public int IndexOf(ulong id) => _indexById.TryGetValue(id, out var index) ? index : -1;

    /// <summary>The index of <paramref name="id"/>, interning it on first sight.</summary>
    public int Intern(ulong id)
    {
        if (_indexById.TryGetValue(id, out var index)) return index;
        index = _ids.Count;
        _ids.Add(id);
        _indexById.Add(id, index);
        return index;
    }

    /// <summary>The id at <paramref name="index"/>.</summary>
    public ulong IdAt(int index) => _ids[index];

    /// <summary>Checks that the two maps agree.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(_ids.Count == _indexById.Count, "each interned id has one index");
        for (var i = 0; i < _ids.Count; i++) Invariant.Check(_indexById[_ids[i]] == i, "index and id maps agree");
    }
}
