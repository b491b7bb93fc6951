using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using FsCheck.Xunit;

namespace ClusterConv.Engine.Tests.Specs;

/// <summary>
/// Whatever text a model file holds, the reader returns a model whose shapes work out or refuses the file with one
/// <see cref="ModelException"/> naming it: never another exception type, and quickly (a bad file cannot make it
/// compute over huge shapes).
/// </summary>
public sealed class KerasModelReaderPropertyTests
{
    private const int Runs = 300;

    private static readonly string[] Valid = [KerasFixtures.Keras22List, KerasFixtures.Keras2WithInputLayer, KerasFixtures.Keras3, KerasFixtures.TfjsModelConfig, KerasFixtures.ChannelsFirst];

    /// <summary>Values Keras fields meet in the wild, and the edges a typo produces.</summary>
    private static readonly JsonNode?[] Replacements =
    [
        null, 0, -1, 1, 2, 3, 1000000, int.MaxValue, long.MaxValue, -2147483648, 0.5, 1e308, double.Epsilon, true, false,
        "", "relu", "softmax", "same", "valid", "channels_first", "Conv2D", "Dense", "InputLayer", "Sequential", "zeros", "\u0000",
    ];

    private static readonly string[] Keys = ["class_name", "config", "layers", "name", "filters", "units", "kernel_size", "strides", "padding", "activation", "batch_input_shape", "pool_size", "rate", "axis", "x"];

    [Property(MaxTest = Runs)]
    public void Random_text_reads_or_is_refused_with_a_ModelException(string text)
    {
        Check(text ?? string.Empty);
    }

    [Property(MaxTest = Runs)]
    public void Random_JSON_trees_read_or_are_refused_with_a_ModelException(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var position = 0;
        Check(Tree(shape, ref position, depth: 0)?.ToJsonString() ?? "null");
    }

    [Property(MaxTest = Runs)]
    public void Valid_model_files_with_values_replaced_or_removed_read_or_are_refused_with_a_ModelException(int file, int[] edits)
    {
        ArgumentNullException.ThrowIfNull(edits);
        var root = JsonNode.Parse(Valid[(int)((uint)file % Valid.Length)])!;
        for (var e = 0; e + 1 < edits.Length && e < 8; e += 2)
        {
            var nodes = Descendants(root).ToList();
            var target = nodes[(int)((uint)edits[e] % nodes.Count)];
            var choice = (uint)edits[e + 1];
            switch (target.Parent)
            {
                case JsonObject parent when choice % 5 == 0:
                    parent.Remove(target.GetPropertyName());
                    break;
                case JsonObject parent:
                    parent[target.GetPropertyName()] = Replacement(choice);
                    break;
                case JsonArray array when choice % 5 == 0:
                    array.RemoveAt(target.GetElementIndex());
                    break;
                case JsonArray array:
                    array[target.GetElementIndex()] = Replacement(choice);
                    break;
                default:
                    break;
            }
        }

        Check(root.ToJsonString());
    }

    [Property(MaxTest = Runs)]
    public void Valid_model_text_cut_or_with_characters_changed_reads_or_is_refused_with_a_ModelException(int file, int[] positions, char value)
    {
        ArgumentNullException.ThrowIfNull(positions);
        var text = new StringBuilder(Valid[(int)((uint)file % Valid.Length)]);
        foreach (var p in positions.Take(3))
        {
            text[(int)((uint)p % text.Length)] = value;
        }

        var json = text.ToString();
        Check(positions.Length % 2 == 0 ? json : json[..(int)((uint)file % json.Length)]);
    }

    [Fact]
    public void A_model_over_the_parameter_limit_is_refused_naming_its_count_and_the_limit()
    {
        var error = Assert.Throws<ModelException>(() => KerasModelReader.Import(KerasFixtures.Keras2WithInputLayer, "m.json", new KerasReadOptions { MaxParameters = KerasFixtures.TinyParameters - 1 }));
        Assert.Equal($"m.json: parameters: the model has {KerasFixtures.TinyParameters} parameters, more than the limit of {KerasFixtures.TinyParameters - 1} (--max-parameters)", error.Message);
        Assert.Equal(KerasFixtures.TinyParameters, KerasModelReader.Import(KerasFixtures.Keras2WithInputLayer, "m.json", new KerasReadOptions { MaxParameters = KerasFixtures.TinyParameters }).Model.ParameterCount());
    }

    [Fact]
    public void A_built_in_model_over_the_parameter_limit_is_refused()
    {
        var error = Assert.Throws<ModelException>(() => ModelCatalog.Resolve("keras-cnn", new KerasReadOptions { MaxParameters = 1000 }));
        Assert.StartsWith("model keras-cnn: the model has ", error.Message, StringComparison.Ordinal);
    }

    private static void Check(string json)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            var model = KerasModelReader.Import(json, "fuzz.json", new KerasReadOptions { MaxParameters = 50_000_000 }).Model;
            Assert.NotEmpty(model.OutputShapes());
        }
        catch (ModelException e)
        {
            Assert.StartsWith("fuzz.json: ", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e.Message);
        }

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"reading took {clock.Elapsed}: {json}");
    }

    private static JsonNode? Replacement(uint choice) =>
        (choice / 5 % 4) switch
        {
            0 => new JsonArray(Replacements[choice % Replacements.Length]?.DeepClone(), Replacements[(choice / 7) % Replacements.Length]?.DeepClone()),
            1 => new JsonObject { [Keys[choice % Keys.Length]] = Replacements[(choice / 3) % Replacements.Length]?.DeepClone() },
            _ => Replacements[choice % Replacements.Length]?.DeepClone(),
        };

    /// <summary>A JSON tree shaped by the generated integers: each picks a kind, and for containers a size.</summary>
    private static JsonNode? Tree(int[] shape, ref int position, int depth)
    {
        var n = position < shape.Length ? (uint)shape[position++] : 0u;
        var kind = depth > 5 ? 2 + (n % 3) : n % 5;
        switch (kind)
        {
            case 0:
                var obj = new JsonObject();
                for (var i = 0; i < (n / 5 % 4) + (depth == 0 ? 1 : 0); i++)
                {
                    var key = Keys[(int)((n / 20 + (uint)i) % Keys.Length)];
                    obj[key] = Tree(shape, ref position, depth + 1);
                }

                if (depth == 0)
                {
                    obj["class_name"] = "Sequential";
                }

                return obj;
            case 1:
                var array = new JsonArray();
                for (var i = 0; i < n / 5 % 4; i++)
                {
                    array.Add(Tree(shape, ref position, depth + 1));
                }

                return array;
            default:
                return Replacements[n % Replacements.Length]?.DeepClone();
        }
    }

    private static IEnumerable<JsonNode> Descendants(JsonNode node)
    {
        yield return node;
        IEnumerable<JsonNode?> children = node switch
        {
            JsonObject o => o.Select(p => p.Value),
            JsonArray a => a,
            _ => [],
        };
        foreach (var child in children.OfType<JsonNode>().SelectMany(Descendants))
        {
            yield return child;
        }
    }
}
