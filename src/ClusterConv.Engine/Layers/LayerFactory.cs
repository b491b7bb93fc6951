using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>Turns a layer description into its runnable layer.</summary>
public static class LayerFactory
{
    public static Layer Create(LayerSpec spec) => spec switch
    {
        Conv2DSpec conv => new Conv2D(conv),
        Pool2DSpec pool => new Pool2D(pool),
        FlattenSpec flatten => new Flatten(flatten),
        DenseSpec dense => new Dense(dense),
        DropoutSpec dropout => new Dropout(dropout),
        BatchNormSpec norm => new BatchNorm(norm),
        ActivationSpec activation => new ActivationLayer(activation),
        _ => throw new ModelException($"layer '{spec?.Name}': no implementation for {spec?.TypeName}"),
    };
}
