using System.Text.RegularExpressions;

namespace ClusterConv.Engine.Specs;

/// <summary>
/// Keras' automatic layer names, in the convention of tf.keras 2.3+ and Keras 3 in a fresh session:
/// the first layer of a class gets the snake-case class name, later ones a suffix counting from 1
/// (conv2d, max_pooling2d, conv2d_1, max_pooling2d_1, flatten, dense, dense_1).
/// </summary>
internal sealed partial class KerasNames
{
    private readonly Dictionary<string, int> _used = new(StringComparer.Ordinal);

    /// <summary>The next automatic name for a layer of the given Keras class.</summary>
    public string Next(string kerasClass)
    {
        var stem = SnakeCase(kerasClass);
        var count = _used.GetValueOrDefault(stem);
        _used[stem] = count + 1;
        return count == 0 ? stem : $"{stem}_{count}";
    }

    /// <summary>Keras' to_snake_case: "Conv2D" → "conv2d", "MaxPooling2D" → "max_pooling2d", "LeakyReLU" → "leaky_re_lu".</summary>
    public static string SnakeCase(string kerasClass)
    {
        var step = WordStart().Replace(kerasClass, "$1_$2");
        return LowerUpper().Replace(step, "$1_$2").ToLowerInvariant();
    }

    [GeneratedRegex("(.)([A-Z][a-z]+)")]
    private static partial Regex WordStart();

    [GeneratedRegex("([a-z])([A-Z])")]
    private static partial Regex LowerUpper();
}
