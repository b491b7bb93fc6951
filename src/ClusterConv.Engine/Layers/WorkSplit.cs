namespace ClusterConv.Engine.Layers;

/// <summary>
/// How a layer splits a batch into parallel parts: the partition depends only on the shape (item
/// count and work per item), never on the thread count, so results do not either.
/// </summary>
internal static class WorkSplit
{
    /// <summary>Elements of work below which another part is not worth waking a thread for.</summary>
    public const int MinPartWork = 16 * 1024;

    /// <summary>Parts to split <paramref name="items"/> independent items of <paramref name="workPerItem"/> elements into (0 when there are no items).</summary>
    public static int Parts(int items, long workPerItem)
    {
        if (items <= 0)
        {
            return 0;
        }

        var parts = Math.Max(1L, items * Math.Max(1L, workPerItem) / MinPartWork);
        return (int)Math.Min(parts, items);
    }

    /// <summary>Parts for an element-wise pass over <paramref name="length"/> elements, each part a whole number of <see cref="MinPartWork"/>-element chunks.</summary>
    public static int ElementParts(int length) => (length + MinPartWork - 1) / MinPartWork;

    /// <summary>Element range [Start, End) of part <paramref name="part"/> from <see cref="ElementParts"/>.</summary>
    public static (int Start, int End) ElementRange(int length, int part)
    {
        var start = part * MinPartWork;
        return (start, Math.Min(length, start + MinPartWork));
    }
}
