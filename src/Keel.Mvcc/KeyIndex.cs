using System.Collections;
using Keel.Core;

namespace Keel.Mvcc;

/// <summary>
/// The store's sorted index from key to its versions (<see cref="KeyEntry"/>): a B+tree (up to <see cref="MaxEntries"/> entries per
/// node) whose nodes are copy-on-write per generation, so <see cref="Freeze"/> captures the whole index in O(1) for a
/// snapshot encoded on another thread while the store goes on (issue 11: walking a sorted set of a million keys on the
/// node loop stalled it for 130–180 ms at every snapshot).
/// </summary>
/// <remarks>
/// <para>Every node carries the generation it was created in. <see cref="Freeze"/> hands out the current root and moves
/// to the next generation; from then on a write copies each node of an older generation on its path before changing it
/// (the frozen tree is never written again), and the store does the same for a <see cref="KeyHistory"/> of an older
/// generation (<see cref="MvccStore"/>'s <c>Writable</c>). Between freezes writes are in place.</para>
/// <para>Deletion removes an emptied leaf from its parent but never merges underfull nodes: lookups stay correct (a
/// separator is a lower bound of its right subtree), and the tree only ever shrinks in height when the root is left
/// with one child.</para>
/// <para>Enumeration walks the nodes it started from: a <see cref="Replace"/> during an enumeration is seen or not
/// (the same key either way), and <see cref="Add"/> or <see cref="Remove"/> must not run during one.</para>
/// </remarks>
internal sealed class KeyIndex : IKeyLookup
{
    /// <summary>Most entries (key entries in a leaf or inner children) in one node.</summary>
    internal const int MaxEntries = 64;

    private Node _root;
    // A long, not an int: read views freeze the index as often as once per loop turn, and a wrapped counter would
    // let a write change a node a frozen view still reads (equality is the test).
    private long _generation;

    public KeyIndex() => _root = new Leaf(0);

    /// <summary>Number of keys.</summary>
    public int Count { get; private set; }

    /// <summary>The current generation: a node or key history of a lower one belongs to a frozen capture.</summary>
    public long Generation => _generation;

    /// <summary>The index as it is now, immutable from here on; later writes copy what they change.</summary>
    public Frozen Freeze()
    {
        var frozen = new Frozen(_root, Count);
        _generation++;
        return frozen;
    }

    public bool TryGetValue(ReadOnlySpan<byte> key, out KeyEntry entry) => TryFind(_root, key, out entry);

    /// <summary>Adds a key's entry; false (and nothing changes) if the key is present.</summary>
    public bool Add(KeyEntry entry)
    {
        Invariant.Check(!entry.IsEmpty, "an added key has versions");
        _root = Writable(_root);
        var split = Insert(_root, entry, out var added);
        if (!added) return false;
        if (split is { } grown) GrowRoot(grown);
        Count++;
        return true;
    }

    /// <summary>
    /// Adds a key greater than every key present, at the right edge of the tree: no search, and the nodes it fills are
    /// left full instead of split in half (a restore reads its keys in order: a million keys load without a million
    /// descents, into half the leaves). False, and nothing changes, if the key is not the greatest.
    /// </summary>
    public bool AddGreatest(KeyEntry entry)
    {
        Invariant.Check(!entry.IsEmpty, "an added key has versions");
        if (Count > 0 && Compare(Greatest(_root), entry.Key) >= 0) return false;
        _root = Writable(_root);
        if (AppendRight(_root, entry) is { } grown) GrowRoot(grown);
        Count++;
        return true;
    }

    // The root split: a new root over the old one and its new right sibling.
    private void GrowRoot((byte[] Separator, Node Right) split)
    {
        var root = new Inner(_generation) { Count = 2 };
        root.Children[0] = _root;
        root.Children[1] = split.Right;
        root.Keys[0] = split.Separator;
        _root = root;
    }

    // The greatest key of a non-empty tree (an emptied leaf is always removed from its parent).
    private static byte[] Greatest(Node node)
    {
        while (node is Inner inner) node = inner.Children[inner.Count - 1];
        var leaf = (Leaf)node;
        return leaf.Items[leaf.Count - 1].Key;
    }

    private (byte[] Separator, Node Right)? AppendRight(Node node, KeyEntry entry)
    {
        if (node is Leaf leaf)
        {
            if (leaf.Count < MaxEntries)
            {
                leaf.Items[leaf.Count++] = entry;
                return null;
            }
            var right = new Leaf(_generation) { Count = 1 };
            right.Items[0] = entry;
            return (entry.Key, right);
        }
        var inner = (Inner)node;
        var last = inner.Count - 1;
        var child = inner.Children[last] = Writable(inner.Children[last]);
        if (AppendRight(child, entry) is not { } split) return null;
        if (inner.Count < MaxEntries)
        {
            inner.Keys[inner.Count - 1] = split.Separator;
            inner.Children[inner.Count] = split.Right;
            inner.Count++;
            return null;
        }
        // A new right sibling with the one child: its separator (the new subtree's least key) goes up.
        var rightInner = new Inner(_generation) { Count = 1 };
        rightInner.Children[0] = split.Right;
        return (split.Separator, rightInner);
    }

    /// <summary>Removes a key; false if it is absent.</summary>
    public bool Remove(ReadOnlySpan<byte> key)
    {
        if (!TryGetValue(key, out _)) return false;
        _root = Writable(_root);
        RemoveFrom(_root, key);
        Count--;
        while (_root is Inner { Count: 1 } single) _root = single.Children[0];
        if (_root is Inner { Count: 0 }) _root = new Leaf(_generation);
        return true;
    }

    /// <summary>Puts <paramref name="entry"/> in the slot of the present entry with the same key (a writable copy of it, or the key's other form).</summary>
    public void Replace(KeyEntry entry)
    {
        Invariant.Check(!entry.IsEmpty, "a replacing entry has versions");
        _root = Writable(_root);
        var node = _root;
        while (node is Inner inner)
        {
            var index = ChildIndex(inner, entry.Key);
            node = inner.Children[index] = Writable(inner.Children[index]);
        }
        var leaf = (Leaf)node;
        var position = Search(leaf, entry.Key);
        Invariant.Check(position >= 0, "a replaced key entry is in the index");
        leaf.Items[position] = entry;
    }

    /// <summary>The entries of keys at or after <paramref name="start"/>, in key order.</summary>
    public IEnumerable<KeyEntry> From(byte[] start) => Enumerate(_root, start);

    public IEnumerator<KeyEntry> GetEnumerator() => Enumerate(_root, null).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Checks the tree's shape: sorted keys, separators bounding their subtrees, counts (tests and invariants).</summary>
    public void AssertInvariants()
    {
        var counted = CheckNode(_root, null, null);
        Invariant.Check(counted == Count, "the index counts its keys");
    }

    private static int CheckNode(Node node, byte[]? lower, byte[]? upper)
    {
        if (node is Leaf leaf)
        {
            for (var i = 0; i < leaf.Count; i++)
            {
                var key = leaf.Items[i].Key;
                Invariant.Check(i == 0 || Compare(leaf.Items[i - 1].Key, key) < 0, "leaf keys are strictly ascending");
                Invariant.Check(lower is null || Compare(lower, key) <= 0, "a key is not below its subtree's separator");
                Invariant.Check(upper is null || Compare(key, upper) < 0, "a key is below the next separator");
            }
            return leaf.Count;
        }
        var inner = (Inner)node;
        Invariant.Check(inner.Count >= 1, "an inner node has a child");
        var total = 0;
        for (var i = 0; i < inner.Count; i++)
        {
            var low = i == 0 ? lower : inner.Keys[i - 1];
            var high = i == inner.Count - 1 ? upper : inner.Keys[i];
            total += CheckNode(inner.Children[i], low, high);
        }
        return total;
    }

    private Node Writable(Node node) => node.Generation == _generation ? node : node.CopyAt(_generation);

    /// <summary>
    /// Inserts below a writable node in one descent: a present key is found on the way and its entry is left as it is
    /// (the path may have been copied; frozen views never see that).
    /// </summary>
    private (byte[] Separator, Node Right)? Insert(Node node, KeyEntry entry, out bool added)
    {
        if (node is Leaf leaf)
        {
            var found = Search(leaf, entry.Key);
            added = found < 0;
            if (!added) return null;
            var position = ~found;
            Array.Copy(leaf.Items, position, leaf.Items, position + 1, leaf.Count - position);
            leaf.Items[position] = entry;
            leaf.Count++;
            if (leaf.Count <= MaxEntries) return null;
            var right = new Leaf(_generation);
            var keep = leaf.Count / 2;
            right.Count = leaf.Count - keep;
            Array.Copy(leaf.Items, keep, right.Items, 0, right.Count);
            Array.Clear(leaf.Items, keep, right.Count);
            leaf.Count = keep;
            return (right.Items[0].Key, right);
        }
        var inner = (Inner)node;
        var index = ChildIndex(inner, entry.Key);
        var child = inner.Children[index] = Writable(inner.Children[index]);
        if (Insert(child, entry, out added) is not { } split) return null;
        // The new right child goes after the one that split, with its separator.
        Array.Copy(inner.Children, index + 1, inner.Children, index + 2, inner.Count - index - 1);
        Array.Copy(inner.Keys, index, inner.Keys, index + 1, inner.Count - 1 - index);
        inner.Children[index + 1] = split.Right;
        inner.Keys[index] = split.Separator;
        inner.Count++;
        if (inner.Count <= MaxEntries) return null;
        var rightInner = new Inner(_generation);
        var keepChildren = inner.Count / 2;
        rightInner.Count = inner.Count - keepChildren;
        Array.Copy(inner.Children, keepChildren, rightInner.Children, 0, rightInner.Count);
        Array.Copy(inner.Keys, keepChildren, rightInner.Keys, 0, rightInner.Count - 1);
        var promoted = inner.Keys[keepChildren - 1];
        Array.Clear(inner.Children, keepChildren, rightInner.Count);
        Array.Clear(inner.Keys, keepChildren - 1, rightInner.Count);
        inner.Count = keepChildren;
        return (promoted, rightInner);
    }

    /// <summary>Removes the key below a writable node; returns true when the node is left empty.</summary>
    private bool RemoveFrom(Node node, ReadOnlySpan<byte> key)
    {
        if (node is Leaf leaf)
        {
            var position = Search(leaf, key);
            Invariant.Check(position >= 0, "a removed key is in the index");
            Array.Copy(leaf.Items, position + 1, leaf.Items, position, leaf.Count - position - 1);
            leaf.Count--;
            leaf.Items[leaf.Count] = default;
            return leaf.Count == 0;
        }
        var inner = (Inner)node;
        var index = ChildIndex(inner, key);
        var child = inner.Children[index] = Writable(inner.Children[index]);
        if (!RemoveFrom(child, key)) return false;
        // Drop the emptied child and one separator beside it: the one on its left, or for the first child the one on its
        // right (the next child then has no lower bound here, which is what the first child has).
        var separator = index == 0 ? 0 : index - 1;
        Array.Copy(inner.Children, index + 1, inner.Children, index, inner.Count - index - 1);
        if (inner.Count > 1) Array.Copy(inner.Keys, separator + 1, inner.Keys, separator, inner.Count - 2 - separator);
        inner.Count--;
        inner.Children[inner.Count] = null!;
        if (inner.Count > 0) inner.Keys[inner.Count - 1] = null!;
        return inner.Count == 0;
    }

    private static bool TryFind(Node node, ReadOnlySpan<byte> key, out KeyEntry entry)
    {
        while (node is Inner inner) node = inner.Children[ChildIndex(inner, key)];
        var leaf = (Leaf)node;
        var position = Search(leaf, key);
        entry = position >= 0 ? leaf.Items[position] : default;
        return position >= 0;
    }

    private static IEnumerable<KeyEntry> Enumerate(Node root, byte[]? start)
    {
        var path = new Stack<(Inner Node, int Next)>();
        var node = root;
        while (node is Inner inner)
        {
            var index = start is null ? 0 : ChildIndex(inner, start);
            path.Push((inner, index + 1));
            node = inner.Children[index];
        }
        var leaf = (Leaf)node;
        var position = start is null ? 0 : Search(leaf, start);
        if (position < 0) position = ~position;
        while (true)
        {
            for (var i = position; i < leaf.Count; i++) yield return leaf.Items[i];
            // Up to the nearest ancestor with a child left, then down its leftmost path.
            Node? next = null;
            while (path.Count > 0)
            {
                var (parent, childIndex) = path.Pop();
                if (childIndex >= parent.Count) continue;
                path.Push((parent, childIndex + 1));
                next = parent.Children[childIndex];
                break;
            }
            if (next is null) yield break;
            while (next is Inner inner)
            {
                path.Push((inner, 1));
                next = inner.Children[0];
            }
            leaf = (Leaf)next;
            position = 0;
        }
    }

    /// <summary>The child whose key range holds <paramref name="key"/>: the number of separators at or below it.</summary>
    private static int ChildIndex(Inner inner, ReadOnlySpan<byte> key)
    {
        int low = 0, high = inner.Count - 1;
        while (low < high)
        {
            var mid = (low + high) >>> 1;
            if (key.SequenceCompareTo(inner.Keys[mid]) < 0) high = mid;
            else low = mid + 1;
        }
        return low;
    }

    /// <summary>Position of <paramref name="key"/> in the leaf, or the bitwise complement of where it would go.</summary>
    private static int Search(Leaf leaf, ReadOnlySpan<byte> key)
    {
        int low = 0, high = leaf.Count - 1;
        while (low <= high)
        {
            var mid = (low + high) >>> 1;
            var order = leaf.Items[mid].Key.AsSpan().SequenceCompareTo(key);
            if (order == 0) return mid;
            if (order < 0) low = mid + 1;
            else high = mid - 1;
        }
        return ~low;
    }

    private static int Compare(byte[] x, byte[] y) => x.AsSpan().SequenceCompareTo(y);

    /// <summary>The index captured by <see cref="Freeze"/>: never written again, safe to read on any thread.</summary>
    internal sealed class Frozen(Node root, int count) : IKeyLookup
    {
        public int Count => count;

        public bool TryGetValue(ReadOnlySpan<byte> key, out KeyEntry entry) => TryFind(root, key, out entry);

        public IEnumerable<KeyEntry> From(byte[] start) => Enumerate(root, start);

        public IEnumerator<KeyEntry> GetEnumerator() => Enumerate(root, null).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    internal abstract class Node(long generation)
    {
        public long Generation { get; } = generation;

        /// <summary>Entries in use: key entries in a leaf, children in an inner node.</summary>
        public int Count;

        public abstract Node CopyAt(long generation);
    }

    private sealed class Leaf(long generation) : Node(generation)
    {
        // One spare slot: a leaf overflows by one before it splits.
        public readonly KeyEntry[] Items = new KeyEntry[MaxEntries + 1];

        public override Node CopyAt(long generation)
        {
            var copy = new Leaf(generation) { Count = Count };
            Array.Copy(Items, copy.Items, Count);
            return copy;
        }
    }

    private sealed class Inner(long generation) : Node(generation)
    {
        // Keys[i] separates Children[i] (keys below it) from Children[i + 1] (keys at or above it).
        public readonly byte[][] Keys = new byte[MaxEntries + 1][];
        public readonly Node[] Children = new Node[MaxEntries + 1];

        public override Node CopyAt(long generation)
        {
            var copy = new Inner(generation) { Count = Count };
            Array.Copy(Children, copy.Children, Count);
            Array.Copy(Keys, copy.Keys, Math.Max(0, Count - 1));
            return copy;
        }
    }
}

/// <summary>Sorted key lookups shared by the live index and a frozen capture of it, so one range code serves both.</summary>
internal interface IKeyLookup : IEnumerable<KeyEntry>
{
    /// <summary>Number of keys.</summary>
    int Count { get; }

    /// <summary>The entry of <paramref name="key"/>, if present.</summary>
    bool TryGetValue(ReadOnlySpan<byte> key, out KeyEntry entry);

    /// <summary>The entries of keys at or after <paramref name="start"/>, in key order.</summary>
    IEnumerable<KeyEntry> From(byte[] start);
}
