using System.Text.Json.Nodes;
using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Specs;

/// <summary>
/// Writes a <see cref="ModelSpec"/> as Keras 3 <c>model.to_json()</c> JSON for a Sequential model
/// (InputLayer with batch_shape, channels_last), which <see cref="KerasModelReader"/> and Keras read back.
/// Run folders and checkpoints carry the model in this form.
/// </summary>
public static class KerasModelWriter
{
    public static string Write(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var layers = new JsonArray
        {
            Layer("InputLayer", new JsonObject
            {
                ["name"] = "input_layer",
                ["batch_shape"] = new JsonArray { null, model.Input.H, model.Input.W, model.Input.C },
                ["dtype"] = "float32",
            }),
        };
        foreach (var layer in model.Layers)
        {
            layers.Add(layer switch
            {
                Conv2DSpec c => Layer("Conv2D", new JsonObject
                {
                    ["name"] = c.Name,
                    ["filters"] = c.Filters,
                    ["kernel_size"] = Pair(c.KernelH, c.KernelW),
                    ["strides"] = Pair(c.StrideH, c.StrideW),
                    ["padding"] = c.Padding == Padding.Same ? "same" : "valid",
                    ["data_format"] = "channels_last",
                    ["dilation_rate"] = Pair(1, 1),
                    ["groups"] = 1,
                    ["activation"] = c.Activation.KerasName,
                    ["use_bias"] = c.UseBias,
                    ["kernel_initializer"] = Initializer(c.KernelInitializer),
                }),
                Pool2DSpec p => Layer(p.TypeName, new JsonObject
                {
                    ["name"] = p.Name,
                    ["pool_size"] = Pair(p.PoolH, p.PoolW),
                    ["strides"] = Pair(p.StrideH, p.StrideW),
                    ["padding"] = p.Padding == Padding.Same ? "same" : "valid",
                    ["data_format"] = "channels_last",
                }),
                FlattenSpec f => Layer("Flatten", new JsonObject { ["name"] = f.Name, ["data_format"] = "channels_last" }),
                DenseSpec d => Layer("Dense", new JsonObject
                {
                    ["name"] = d.Name,
                    ["units"] = d.Units,
                    ["activation"] = d.Activation.KerasName,
                    ["use_bias"] = d.UseBias,
                    ["kernel_initializer"] = Initializer(d.KernelInitializer),
                }),
                DropoutSpec d => Layer("Dropout", new JsonObject { ["name"] = d.Name, ["rate"] = d.Rate }),
                BatchNormSpec b => Layer("BatchNormalization", new JsonObject
                {
                    ["name"] = b.Name,
                    ["axis"] = -1,
                    ["momentum"] = b.Momentum,
                    ["epsilon"] = b.Epsilon,
                    ["center"] = b.Center,
                    ["scale"] = b.Scale,
                }),
                ActivationSpec a => ActivationLayer(a),
                _ => throw new ModelException($"layer '{layer.Name}': cannot be written as Keras JSON ({layer.TypeName})"),
            });
        }

        var root = new JsonObject
        {
            ["module"] = "keras",
            ["class_name"] = "Sequential",
            ["config"] = new JsonObject { ["name"] = model.Name, ["layers"] = layers },
            ["registered_name"] = null,
        };
        return root.ToJsonString();
    }

    private static JsonObject ActivationLayer(ActivationSpec a) => a.KerasClass switch
    {
        "ReLU" => Layer("ReLU", new JsonObject { ["name"] = a.Name }),
        "LeakyReLU" => Layer("LeakyReLU", new JsonObject { ["name"] = a.Name, ["negative_slope"] = a.Activation.Alpha }),
        _ when a.Activation.Kind == ActivationKind.LeakyRelu => Layer("LeakyReLU", new JsonObject { ["name"] = a.Name, ["negative_slope"] = a.Activation.Alpha }),
        _ => Layer("Activation", new JsonObject { ["name"] = a.Name, ["activation"] = a.Activation.KerasName }),
    };

    private static JsonObject Layer(string className, JsonObject config) => new()
    {
        ["module"] = "keras.layers",
        ["class_name"] = className,
        ["config"] = config,
        ["registered_name"] = null,
    };

    private static JsonArray Pair(int a, int b) => new() { a, b };

    private static JsonObject Initializer(Initializer initializer) => new()
    {
        ["module"] = "keras.initializers",
        ["class_name"] = initializer switch
        {
            Specs.Initializer.GlorotUniform => "GlorotUniform",
            Specs.Initializer.GlorotNormal => "GlorotNormal",
            Specs.Initializer.HeUniform => "HeUniform",
            Specs.Initializer.HeNormal => "HeNormal",
            Specs.Initializer.Zeros => "Zeros",
            _ => "Ones",
        },
        ["config"] = new JsonObject { ["seed"] = null },
        ["registered_name"] = null,
    };
}
