using System.Numerics.Tensors;

namespace ClusterConv.Cluster;

/// <summary>A node of the reduction tree: the sum of the gradients of micro-batches [Start, End).</summary>
public readonly record struct TreeNode(int Start, int End)
{
    public int Middle => Start + ((End - Start) / 2);

    public bool IsLeaf => End - Start == 1;
}

/// <summary>
/// The fixed reduction tree over M micro-batch gradients: node [s, e) = node [s, m) + node [m, e) with
/// m = s + ⌊(e − s)/2⌋, leaves are single micro-batches. Every sum is one elementwise float addition, left then
/// right, so a node's value is the same bits whoever computes it: a worker pre-reduces the nodes its slots
/// cover, the parameter server adds the rest.
/// </summary>
public static class ReductionTree
{
    /// <summary>The largest nodes inside [start, end) that together cover it exactly, left to right.</summary>
    public static IReadOnlyList<TreeNode> Cover(int leaves, int start, int end)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(leaves);
        var result = new List<TreeNode>();
        Visit(new TreeNode(0, leaves));
        return result;

        void Visit(TreeNode node)
        {
            if (node.End <= start || node.Start >= end)
            {
                return;
            }

            if (start <= node.Start && node.End <= end)
            {
                result.Add(node);
                return;
            }

            Visit(new TreeNode(node.Start, node.Middle));
            Visit(new TreeNode(node.Middle, node.End));
        }
    }

    /// <summary>
    /// The value of <paramref name="node"/> from known node values; null when nothing under it is known. With
    /// <paramref name="allowMissing"/> false, a missing part throws; with true, it counts as zero.
    /// </summary>
    /// <param name="buffer">Where the sum of an internal node goes (reused across steps to spare the large-object heap); null allocates.</param>
    public static float[]? Reduce(TreeNode node, IReadOnlyDictionary<TreeNode, float[]> known, int length, bool allowMissing, ref int missingLeaves, Func<TreeNode, float[]>? buffer = null)
    {
        ArgumentNullException.ThrowIfNull(known);
        if (known.TryGetValue(node, out var value))
        {
            return value;
        }

        if (node.IsLeaf)
        {
            if (!allowMissing)
            {
                throw new InvalidOperationException($"the gradient of micro-batch {node.Start} is missing");
            }

            missingLeaves++;
            return null;
        }

        var left = Reduce(new TreeNode(node.Start, node.Middle), known, length, allowMissing, ref missingLeaves, buffer);
        var right = Reduce(new TreeNode(node.Middle, node.End), known, length, allowMissing, ref missingLeaves, buffer);
        if (left is null || right is null)
        {
            return left ?? right;
        }

        var sum = buffer?.Invoke(node) ?? new float[length];
        TensorPrimitives.Add(left, right, sum);
        return sum;
    }
}
