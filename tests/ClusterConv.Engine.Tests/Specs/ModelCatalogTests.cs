using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests.Specs;

public sealed class ModelCatalogTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("clusterconv-catalog-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Resolves_a_built_in_name()
    {
        Assert.Same(BuiltInModels.TfCnn, ModelCatalog.Resolve("tf-cnn"));
    }

    [Fact]
    public void Resolves_a_path_by_reading_the_Keras_file()
    {
        var path = Path.Combine(_directory, "tiny.json");
        File.WriteAllText(path, KerasFixtures.Keras3);

        var import = ModelCatalog.ResolveWithNotes(path);

        Assert.Equal(KerasFixtures.TinyParameters, import.Model.ParameterCount());
        Assert.Single(import.Notes); // softmax read as logits
    }

    [Fact]
    public void A_missing_file_is_refused_naming_its_full_path()
    {
        var path = Path.Combine(_directory, "missing.json");

        var error = Assert.Throws<ModelException>(() => ModelCatalog.Resolve(path));

        Assert.Equal($"model file not found: '{path}'", error.Message);
    }

    [Fact]
    public void An_unknown_name_is_refused_listing_the_built_ins()
    {
        var error = Assert.Throws<ModelException>(() => ModelCatalog.Resolve("vgg16"));

        Assert.StartsWith("unknown model 'vgg16': not a built-in model (keras-cnn, tf-cnn, lenet5)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Errors_in_a_file_name_the_file()
    {
        var path = Path.Combine(_directory, "broken.json");
        File.WriteAllText(path, "{\"class_name\": ");

        var error = Assert.Throws<ModelException>(() => ModelCatalog.Resolve(path));

        Assert.StartsWith($"{path}: malformed JSON", error.Message, StringComparison.Ordinal);
    }
}
