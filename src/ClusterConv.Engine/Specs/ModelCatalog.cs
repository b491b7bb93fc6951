using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Specs;

/// <summary>Where a model comes from: a built-in name (<see cref="BuiltInModels.Names"/>) or the path of a Keras JSON file.</summary>
public static class ModelCatalog
{
    /// <summary>A built-in model by name, else the Keras JSON file at that path. Errors are <see cref="ModelException"/>s naming the path.</summary>
    public static ModelSpec Resolve(string nameOrPath, KerasReadOptions? options = null) => ResolveWithNotes(nameOrPath, options).Model;

    /// <summary>As <see cref="Resolve"/>, with the reader's notes (none for a built-in model).</summary>
    public static ModelImport ResolveWithNotes(string nameOrPath, KerasReadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (BuiltInModels.TryGet(nameOrPath, out var builtIn))
        {
            return options?.MaxParameters is { } max && builtIn.ParameterCount() > max
                ? throw new ModelException(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"model {nameOrPath}: the model has {builtIn.ParameterCount():N0} parameters, more than the limit of {max:N0} (--max-parameters)"))
                : new ModelImport(builtIn, []);
        }

        if (File.Exists(nameOrPath))
        {
            return KerasModelReader.ImportFile(nameOrPath, options);
        }

        var looksLikePath = nameOrPath.Contains('/', StringComparison.Ordinal)
            || nameOrPath.Contains('\\', StringComparison.Ordinal)
            || nameOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
        throw new ModelException(looksLikePath
            ? $"model file not found: '{Path.GetFullPath(nameOrPath)}'"
            : $"unknown model '{nameOrPath}': not a built-in model ({string.Join(", ", BuiltInModels.Names)}) and no file at '{Path.GetFullPath(nameOrPath)}'");
    }
}
