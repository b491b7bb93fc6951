using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

public class CheckpointTests
{
    private static ModelSpec EveryLayer() => new(
        "every-layer",
        new SampleShape(1, 10, 10),
        [
            new Conv2DSpec("conv2d", 4, 3, 2, 1, 2, Padding.Same, UseBias: false, Activation: new Activation(ActivationKind.Elu, 1f)),
            new BatchNormSpec("batch_normalization", 0.9f, 1e-3f),
            new ActivationSpec("re_lu", Activation.Relu, "ReLU"),
            new Pool2DSpec("average_pooling2d", PoolKind.Average, 2, 2, 2, 2, Padding.Same),
            new Pool2DSpec("max_pooling2d", PoolKind.Max, 2, 2, 1, 1),
            new FlattenSpec("flatten"),
            new DropoutSpec("dropout", 0.25f),
            new DenseSpec("dense", 7, Activation: new Activation(ActivationKind.Sigmoid), KernelInitializer: Initializer.HeNormal),
            new DenseSpec("dense_1", 3),
        ]);

    [Fact]
    public void Keras_json_written_for_a_model_reads_back_as_the_same_model()
    {
        var spec = EveryLayer();
        var read = KerasModelReader.Read(KerasModelWriter.Write(spec), "written.json");
        Assert.Equal(spec.Input, read.Input);
        Assert.Equal(spec.Layers, read.Layers);
    }

    [Fact]
    public void A_checkpoint_round_trips_model_parameters_state_and_normalization()
    {
        var model = new Model(EveryLayer());
        model.Initialize(9);
        var state = new float[] { 1, 2, 3 };
        var checkpoint = ModelCheckpoint.Capture(model, step: 120, epoch: 2, new InputNormalization("standardize", 0.28f, 0.35f), "adam", state);
        using var stream = new MemoryStream();
        checkpoint.Save(stream);
        var loaded = ModelCheckpoint.Load(stream.ToArray(), "mem.ckpt");
        Assert.Equal(120, loaded.Step);
        Assert.Equal(2, loaded.Epoch);
        Assert.Equal(checkpoint.Normalization, loaded.Normalization);
        Assert.Equal("adam", loaded.Optimizer);
        Assert.Equal(state, loaded.OptimizerState);
        Assert.Equal(model.WeightsSha256(), loaded.CreateModel().WeightsSha256());
    }

    [Fact]
    public void A_cut_or_altered_checkpoint_is_refused_with_the_file_named()
    {
        var model = new Model(EveryLayer());
        model.Initialize(1);
        using var stream = new MemoryStream();
        ModelCheckpoint.Capture(model, 1, 0, InputNormalization.Scale).Save(stream);
        var bytes = stream.ToArray();

        var cut = Assert.Throws<ModelException>(() => ModelCheckpoint.Load(bytes.AsSpan(0, bytes.Length - 100), "run/model.ckpt"));
        Assert.Contains("run/model.ckpt", cut.Message);
        Assert.Contains("damaged", cut.Message);

        bytes[bytes.Length / 2] ^= 0x40;
        var altered = Assert.Throws<ModelException>(() => ModelCheckpoint.Load(bytes, "run/model.ckpt"));
        Assert.Contains("SHA-256", altered.Message);

        var foreign = Assert.Throws<ModelException>(() => ModelCheckpoint.Load("not a checkpoint at all, just text"u8, "x.ckpt"));
        Assert.Contains("not a ClusterConv checkpoint", foreign.Message);
    }

    [Fact]
    public void Saving_to_a_file_leaves_no_temporary_files_behind()
    {
        var directory = Directory.CreateTempSubdirectory("cc-ckpt-");
        try
        {
            var model = new Model(EveryLayer());
            model.Initialize(1);
            var path = Path.Combine(directory.FullName, "model.ckpt");
            ModelCheckpoint.Capture(model, 1, 0, InputNormalization.Scale).SaveFile(path);
            ModelCheckpoint.Capture(model, 2, 0, InputNormalization.Scale).SaveFile(path);
            Assert.Equal(["model.ckpt"], directory.GetFiles().Select(f => f.Name));
            Assert.Equal(2, ModelCheckpoint.LoadFile(path).Step);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
